using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary><c>proxyguard policy check|explain|test</c> and <c>run</c> with a bad policy, as real processes.</summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class PolicyCliTests
{
    private static readonly string RepoRoot = FindRepoRoot();

    public static TheoryData<string, string> ShippedCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var cases in Directory.EnumerateFiles(Path.Combine(FindRepoRoot(), "policies"), "*.cases.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(FindRepoRoot(), cases);
            data.Add(relative.Replace(".cases.yaml", ".yaml", StringComparison.Ordinal), relative);
        }

        return data;
    }

    [Fact]
    public void The_shipped_policies_have_cases()
    {
        var cases = ShippedCases().Select(row => (string)row[0]).ToList();
        Assert.Contains("policies/default.yaml", cases);
        Assert.Contains("policies/examples/coding-agent.yaml", cases);
        Assert.All(cases, policy => Assert.True(File.Exists(Path.Combine(RepoRoot, policy)), policy));
    }

    [Theory]
    [MemberData(nameof(ShippedCases))]
    public async Task Policy_test_on_the_shipped_policies_prints_N_passed_0_failed(string policy, string cases)
    {
        var result = await Cli.RunAsync(RepoRoot, "policy", "test", policy, cases);
        Assert.True(result.ExitCode == 0, result.All);
        var summary = Regex.Match(result.Stdout, @"^(\d+) passed, 0 failed$", RegexOptions.Multiline);
        Assert.True(summary.Success, result.All);
        var expected = Regex.Count(await File.ReadAllTextAsync(Path.Combine(RepoRoot, cases)), @"^  - name: ", RegexOptions.Multiline);
        Assert.Equal(expected, int.Parse(summary.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.DoesNotContain("FAIL", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_test_with_a_failing_case_exits_1_and_says_which()
    {
        using var dir = new TempDir();
        var cases = dir.Write("failing.cases.yaml", """
            cases:
              - name: npm metadata is readable
                url: https://registry.npmjs.org/left-pad
                expect: { decision: allow, rule: npm-read }
              - name: npm publish wrongly expected to pass
                method: PUT
                url: https://registry.npmjs.org/left-pad
                expect: { decision: allow }
            """);
        var result = await Cli.RunAsync(RepoRoot, "policy", "test", "policies/default.yaml", cases);
        Assert.True(result.ExitCode == 1, result.All);
        Assert.Matches(new Regex("^1 passed, 1 failed$", RegexOptions.Multiline), result.Stdout);
        Assert.Contains("FAIL npm publish wrongly expected to pass", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("PASS npm metadata is readable", result.Stdout, StringComparison.Ordinal);

        // A broken cases file is reported with its position and fails too.
        var broken = dir.Write("broken.cases.yaml", "cases:\n  - name: x\n    url: https://a.example/\n    expect: { decision: perhaps }\n");
        var brokenResult = await Cli.RunAsync(RepoRoot, "policy", "test", "policies/default.yaml", broken);
        Assert.True(brokenResult.ExitCode == 1, brokenResult.All);
        Assert.Contains($"{broken}:4:", brokenResult.Stderr, StringComparison.Ordinal);

        // So does a missing cases file.
        var missing = await Cli.RunAsync(RepoRoot, "policy", "test", "policies/default.yaml", dir.File("nope.cases.yaml"));
        Assert.True(missing.ExitCode == 1, missing.All);
    }

    [Fact]
    public async Task Policy_check_accepts_the_samples_and_reports_FILE_LINE_COL_for_broken_files()
    {
        var samples = Directory.EnumerateFiles(Path.Combine(RepoRoot, "policies"), "*.yaml", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".cases.yaml", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(RepoRoot, f))
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.Contains("policies/default.yaml", samples);
        var ok = await Cli.RunAsync(RepoRoot, ["policy", "check", .. samples]);
        Assert.True(ok.ExitCode == 0, ok.All);
        Assert.Empty(ok.Stderr);
        foreach (var sample in samples)
        {
            Assert.Contains($"{sample}: ok", ok.Stdout, StringComparison.Ordinal);
        }

        using var dir = new TempDir();
        var broken = dir.Write("broken.yaml", """
            version: 1
            default: deny
            rules:
              - name: a
                hosts: ["*.com"]
                ports: [70000]
                action: allow
              - name: a
                hosts: [example.org]
                acton: allow
            """);
        var result = await Cli.RunAsync(RepoRoot, "policy", "check", "policies/default.yaml", broken);
        Assert.True(result.ExitCode == 1, result.All);
        Assert.Contains("policies/default.yaml: ok", result.Stdout, StringComparison.Ordinal);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.Matches(new Regex("^" + Regex.Escape(broken) + @":\d+:\d+: \S"), l));
        Assert.Contains(lines, l => l.StartsWith($"{broken}:5:13: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"{broken}:6:13: ", StringComparison.Ordinal) && l.Contains("70000", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"{broken}:8:", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"{broken}:10:5: ", StringComparison.Ordinal) && l.Contains("acton", StringComparison.Ordinal));

        // A YAML syntax error and a file writable by others.
        var syntax = dir.Write("syntax.yaml", "version: 1\nrules: [\n");
        var writable = dir.Write("writable.yaml", "version: 1\n");
        File.SetUnixFileMode(writable, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        var more = await Cli.RunAsync(RepoRoot, "policy", "check", syntax, writable, dir.File("missing.yaml"));
        Assert.True(more.ExitCode == 1, more.All);
        Assert.Matches(new Regex("^" + Regex.Escape(syntax) + @":\d+:\d+: ", RegexOptions.Multiline), more.Stderr);
        Assert.Contains($"{writable}:1:1: ", more.Stderr, StringComparison.Ordinal);
        Assert.Contains($"{dir.File("missing.yaml")}:1:1: ", more.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_check_reads_the_CA_files_run_reads_and_warns_about_secrets_no_rule_reaches()
    {
        using var dir = new TempDir();
        var policy = dir.Write("ca.yaml", $"""
            version: 1
            default: deny
            tls:
              upstream_ca_files: [{dir.File("missing-ca.pem")}, {dir.File("also-missing.pem")}]
            rules:
              - name: gh
                hosts: [api.github.com]
                action: allow
            secrets:
              - name: orphan
                value: env:PG_ORPHAN_SECRET
                hosts: [nowhere.example.org]
            """);
        var check = await Cli.RunAsync(RepoRoot, "policy", "check", policy);
        Assert.True(check.ExitCode == 1, check.All);
        Assert.Contains($"{policy}:4:23: tls.upstream_ca_files[0]: ", check.Stderr, StringComparison.Ordinal);
        Assert.Contains("tls.upstream_ca_files[1]: ", check.Stderr, StringComparison.Ordinal);
        Assert.Contains($"{policy}:10:5: warning: secret 'orphan' is bound to nowhere.example.org, which no allow rule reaches", check.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(": ok", check.Stdout, StringComparison.Ordinal);

        // explain and test refuse it the same way, with the position and without a stack trace.
        var explain = await Cli.RunAsync(dir.Path, "policy", "explain", policy, "GET", "https://api.github.com/");
        Assert.True(explain.ExitCode == 1, explain.All);
        Assert.Contains($"{policy}:4:23: tls.upstream_ca_files[0]: ", explain.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", explain.All, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", explain.All, StringComparison.Ordinal);

        // With the CA file present the policy passes (the warning stays a warning).
        using var pki = new TestPki();
        await File.WriteAllTextAsync(dir.File("missing-ca.pem"), pki.CaPem);
        await File.WriteAllTextAsync(dir.File("also-missing.pem"), pki.CaPem);
        var ok = await Cli.RunAsync(RepoRoot, "policy", "check", policy);
        Assert.True(ok.ExitCode == 0, ok.All);
        Assert.Contains("warning: secret 'orphan'", ok.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_explain_warns_when_a_secret_does_not_resolve_here_and_lists_near_misses()
    {
        using var dir = new TempDir();
        var policy = dir.Write("p.yaml", """
            version: 1
            default: deny
            rules:
              - name: read
                hosts: [api.example.com]
                methods: [GET]
                action: allow
            secrets:
              - name: api
                value: env:PG_EXPLAIN_NOT_SET_ANYWHERE
                hosts: [api.example.com]
            """);
        var allowed = await Cli.RunAsync(dir.Path, "policy", "explain", policy, "GET", "https://api.example.com/x");
        Assert.True(allowed.ExitCode == 0, allowed.All);
        Assert.Matches(new Regex(@"^warning:\s+secret 'api' does not resolve here .*PG_EXPLAIN_NOT_SET_ANYWHERE", RegexOptions.Multiline), allowed.Stdout);
        Assert.DoesNotContain("result:", allowed.Stdout, StringComparison.Ordinal);

        var denied = await Cli.RunAsync(dir.Path, "policy", "explain", policy, "POST", "https://api.example.com/x");
        Assert.True(denied.ExitCode == 1, denied.All);
        Assert.Matches(new Regex(@"^decision:\s+deny ", RegexOptions.Multiline), denied.Stdout);
        Assert.Matches(new Regex(@"^nearest:\s+rule 'read' \(line 4\): host and port matched; method POST is not in \[GET\]$", RegexOptions.Multiline), denied.Stdout);
        Assert.DoesNotMatch(new Regex(@"\ballow\b", RegexOptions.Multiline), Regex.Replace(denied.Stdout, "^(nearest|warning):.*$", string.Empty, RegexOptions.Multiline));
    }

    [Fact]
    public async Task Policy_test_runs_content_and_secret_cases_and_prints_failure_locations()
    {
        using var dir = new TempDir();
        var policy = dir.Write("p.yaml", """
            version: 1
            default: deny
            rules:
              - name: llm
                hosts: [api.example.com]
                methods: [POST]
                action: allow
            content:
              rules:
                - name: internal-marker
                  pattern: "ACME-INTERNAL-[0-9]{4}"
                  action: deny
            secrets:
              - name: llm-key
                value: vault:secret/data/llm#key
                hosts: [api.example.com]
                in: [headers]
            """);
        dir.Write("body.txt", "key={{placeholder:llm-key}}");
        var cases = dir.Write("p.cases.yaml", """
            cases:
              - name: key in a header is substituted
                method: POST
                url: https://api.example.com/v1
                headers: { Authorization: "Bearer {{placeholder:llm-key}}" }
                expect: { decision: allow, rule: llm, secrets: [llm-key], findings: [] }
              - name: key in the body is misuse
                method: POST
                url: https://api.example.com/v1
                body_file: body.txt
                expect: { decision: deny, rule: secrets, reason: secret-misuse, secrets: [] }
              - name: a content rule denies
                method: POST
                url: https://api.example.com/v1
                body: "see ACME-INTERNAL-1234"
                expect: { decision: deny, reason: content-finding, findings: [internal-marker] }
              - name: the real value is refused
                method: POST
                url: https://api.example.com/v1
                headers: { Authorization: "Bearer {{value:llm-key}}" }
                expect: { decision: deny, reason: content-finding }
              - name: wrongly expected
                method: POST
                url: https://api.example.com/v1
                body: "ACME-INTERNAL-0000"
                expect: { decision: allow, findings: [] }
            """);
        var result = await Cli.RunAsync(dir.Path, "policy", "test", policy, cases);
        Assert.True(result.ExitCode == 1, result.All);
        Assert.Contains("4 passed, 1 failed", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"FAIL wrongly expected ({cases}:22:5): expected allow, got deny; expected findings [], got [internal-marker]", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("pgstandin", result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_check_resolves_secret_references_only_when_asked()
    {
        const string example = "policies/examples/coding-agent.yaml";
        var unset = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "check", "--resolve-secrets", example], RepoRoot, null);
        Assert.True(unset.ExitCode == 1, unset.All);
        Assert.Matches(new Regex("^" + Regex.Escape(example) + @":\d+:\d+: .*PG_CODING_AGENT_TOKEN", RegexOptions.Multiline), unset.Stderr);

        var environment = new Dictionary<string, string>
        {
            ["PG_CODING_AGENT_TOKEN"] = "pg-test-token-not-a-secret",
            ["GITHUB_TOKEN"] = "pg-test-github-not-a-secret",
            ["ANTHROPIC_API_KEY"] = "pg-test-anthropic-not-a-secret",
        };
        var set = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "check", "--resolve-secrets", example], RepoRoot, environment);
        Assert.True(set.ExitCode == 0, set.All);
        Assert.DoesNotContain("not-a-secret", set.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_explain_prints_the_decision_and_rule_and_exits_0_or_1()
    {
        var allow = await Cli.RunAsync(RepoRoot, "policy", "explain", "policies/default.yaml", "GET", "https://registry.npmjs.org/left-pad");
        Assert.True(allow.ExitCode == 0, allow.All);
        Assert.Matches(new Regex(@"^decision:\s+allow", RegexOptions.Multiline), allow.Stdout);
        Assert.Matches(new Regex(@"^rule:\s+npm-read$", RegexOptions.Multiline), allow.Stdout);

        var deny = await Cli.RunAsync(RepoRoot, "policy", "explain", "policies/default.yaml", "PUT", "https://registry.npmjs.org/left-pad");
        Assert.True(deny.ExitCode == 1, deny.All);
        Assert.Matches(new Regex(@"^decision:\s+deny", RegexOptions.Multiline), deny.Stdout);
        Assert.Matches(new Regex(@"^rule:\s+default$", RegexOptions.Multiline), deny.Stdout);

        // Client-scoped rules: with and without the client.
        const string example = "policies/examples/coding-agent.yaml";
        var asClient = await Cli.RunAsync(RepoRoot, "policy", "explain", example, "--client", "coding-agent", "GET", "https://api.github.com/repos/torvalds/linux");
        Assert.True(asClient.ExitCode == 0, asClient.All);
        Assert.Matches(new Regex(@"^rule:\s+github-api-read$", RegexOptions.Multiline), asClient.Stdout);
        var anonymous = await Cli.RunAsync(RepoRoot, "policy", "explain", example, "GET", "https://api.github.com/repos/torvalds/linux");
        Assert.True(anonymous.ExitCode == 1, anonymous.All);

        // Ambiguous paths are explained as such.
        var ambiguous = await Cli.RunAsync(RepoRoot, "policy", "explain", example, "--client", "coding-agent", "POST", "https://api.github.com/repos/acme/app%2Fissues");
        Assert.True(ambiguous.ExitCode == 1, ambiguous.All);
        Assert.Contains("ambiguous", ambiguous.Stdout, StringComparison.Ordinal);

        // An invalid policy: exit 1 with its positions.
        using var dir = new TempDir();
        var broken = dir.Write("broken.yaml", "version: 1\nmode: loud\n");
        var invalid = await Cli.RunAsync(RepoRoot, "policy", "explain", broken, "GET", "https://example.org/");
        Assert.True(invalid.ExitCode == 1, invalid.All);
        Assert.Contains($"{broken}:2:7: ", invalid.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("policy")]
    [InlineData("policy|frobnicate")]
    [InlineData("policy|check")]
    [InlineData("policy|test|policies/default.yaml")]
    [InlineData("policy|explain|policies/default.yaml")]
    [InlineData("policy|explain|policies/default.yaml|GET")]
    [InlineData("policy|explain|policies/default.yaml|GET|not a url")]
    [InlineData("policy|explain|policies/default.yaml|GET|ftp://example.org/")]
    [InlineData("policy|explain|policies/default.yaml|GET|https://example.org/|-H|no-colon")]
    [InlineData("policy|explain|policies/default.yaml|GET|https://example.org/|--bogus")]
    [InlineData("policy|check|--bogus|policies/default.yaml")]
    public async Task Bad_usage_exits_2(string commandLine)
    {
        var args = commandLine.Split('|');
        var result = await Cli.RunAsync(RepoRoot, args);
        Assert.True(result.ExitCode == 2, $"{string.Join(' ', args)}: exit {result.ExitCode}\n{result.All}");
        Assert.NotEmpty(result.Stderr);
    }

    [Fact]
    public async Task Run_with_an_invalid_policy_exits_1_with_positions_on_stderr_and_a_one_line_reason()
    {
        using var dir = new TempDir();
        var policy = dir.Write("policy.yaml", """
            version: 1
            default: deny
            rules:
              - name: r
                hosts: [example.org]
                ports: [0]
                action: permit
            """);
        var result = await RunAsync(dir, policy);
        Assert.True(result.ExitCode == 1, result.All);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith($"{policy}:6:13: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"{policy}:7:13: ", StringComparison.Ordinal));
        var reasons = lines.Where(l => l.StartsWith("proxyguard: ", StringComparison.Ordinal)).ToList();
        Assert.Single(reasons);
        Assert.Contains("invalid", reasons[0], StringComparison.Ordinal);
        Assert.Contains(policy, reasons[0], StringComparison.Ordinal);
        Assert.All(lines, l => Assert.True(l.StartsWith(policy + ":", StringComparison.Ordinal) || l.StartsWith("proxyguard: ", StringComparison.Ordinal), l));
        Assert.DoesNotContain("listening", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("keeping the last good policy", result.All, StringComparison.Ordinal);

        // A policy writable by others, and a missing one, are refused the same way.
        var writable = dir.Write("writable.yaml", "version: 1\n");
        File.SetUnixFileMode(writable, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        var refused = await RunAsync(dir, writable);
        Assert.True(refused.ExitCode == 1, refused.All);
        Assert.Contains($"{writable}:1:1: ", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("chmod go-w", refused.Stderr, StringComparison.Ordinal);

        var missing = await RunAsync(dir, dir.File("missing.yaml"));
        Assert.True(missing.ExitCode == 1, missing.All);
        Assert.Contains("missing.yaml", missing.Stderr, StringComparison.Ordinal);
    }

    private static Task<CommandResult> RunAsync(TempDir dir, string policy) =>
        Cli.RunProgramAsync("dotnet",
            [ProxyProcess.DllPath, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--ca-dir", dir.File("ca"), "--data-dir", dir.File("data")],
            dir.Path, new Dictionary<string, string> { ["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken }, TimeSpan.FromSeconds(60));

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "ProxyGuard.sln")))
            {
                return d.FullName;
            }
        }

        throw new InvalidOperationException("ProxyGuard.sln not found above " + AppContext.BaseDirectory);
    }
}
