using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Issue 19 (CLI rough edges, without a running proxy): <c>help</c>, one line instead of a stack trace,
/// and <c>env</c>/<c>explain</c> that create nothing and fail so that <c>eval</c> fails.
/// </summary>
public sealed class CliRoughEdgesTests
{
    private const string SecretPolicy = """
        version: 1
        default: deny
        rules:
          - name: github-api
            hosts: [api.github.com]
            action: allow
        secrets:
          - name: github
            value: env:PG_TEST_GITHUB_TOKEN
            sandbox_env: GITHUB_TOKEN
            hosts: [api.github.com]
        """;

    private static void AssertNoStackTrace(CommandResult result)
    {
        Assert.DoesNotContain("   at ", result.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", result.All, StringComparison.Ordinal);
        Assert.DoesNotContain("--- End of stack trace", result.All, StringComparison.Ordinal);
    }

    private static string[] Entries(string directory) =>
        Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    [Fact]
    public async Task Help_is_an_alias_of_the_help_option()
    {
        using var dir = new TempDir();
        var help = await Cli.RunAsync(dir.Path, "help");
        var option = await Cli.RunAsync(dir.Path, "--help");
        Assert.True(help.ExitCode == 0, help.All);
        Assert.Equal(option.Stdout, help.Stdout);
        Assert.Contains("events", help.Stdout, StringComparison.Ordinal);

        var sub = await Cli.RunAsync(dir.Path, "help", "events");
        Assert.True(sub.ExitCode == 0, sub.All);
        Assert.Equal((await Cli.RunAsync(dir.Path, "events", "--help")).Stdout, sub.Stdout);
        Assert.Contains("--since", sub.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unexpected_error_is_one_line_unless_PROXYGUARD_DEBUG_is_set()
    {
        using var dir = new TempDir();

        // An empty file name reaches the file system API, which throws: the top-level handler makes it one line.
        var plain = await Cli.RunAsync(dir.Path, "policy", "explain", string.Empty, "GET", "https://api.github.com/");
        Assert.Equal(1, plain.ExitCode);
        AssertNoStackTrace(plain);
        var line = Assert.Single(plain.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("proxyguard: ", line, StringComparison.Ordinal);
        Assert.Contains("PROXYGUARD_DEBUG", line, StringComparison.Ordinal);

        var debug = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "explain", string.Empty, "GET", "https://api.github.com/"],
            dir.Path, new Dictionary<string, string> { ["PROXYGUARD_DEBUG"] = "1" });
        Assert.Equal(1, debug.ExitCode);
        Assert.Contains("   at ", debug.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ca|init|--dir|")]
    [InlineData("env|--data-dir|")]
    [InlineData("run|--ca-dir|")]
    [InlineData("run|--listen|https://127.0.0.1:8080")]
    [InlineData("events|--admin|not an address")]
    [InlineData("events|--admin|ftp://127.0.0.1:9090")]
    [InlineData("events|--since|yesterday")]
    public async Task A_bad_flag_value_is_a_usage_error_on_one_line(string commandLine)
    {
        var args = commandLine.Split('|');
        using var dir = new TempDir();
        var result = await Cli.RunAsync(dir.Path, args);
        Assert.Equal(2, result.ExitCode);
        AssertNoStackTrace(result);
        Assert.StartsWith("proxyguard: " + (args[0] == "ca" ? "--dir" : args[1]), result.Stderr, StringComparison.Ordinal);
        Assert.Empty(Entries(dir.Path));
    }

    /// <summary>
    /// A sweep of flags a user gets wrong: each fails with a non-zero exit, no stack frame, and one line that names the
    /// flag and what it expected (the usage hint aside), without reaching the network or creating anything.
    /// </summary>
    [Theory]
    [InlineData("events|--after|abc", 2, "--after: expected an event id (a whole number, 0 or more), got 'abc'")]
    [InlineData("events|--after|-3", 2, "--after: expected an event id")]
    [InlineData("run|--events-max-count|many", 2, "--events-max-count: expected a number of events")]
    [InlineData("run|--events-outbox-max|1e6", 2, "--events-outbox-max: expected a number of events")]
    [InlineData("events|--decision|denied", 2, "--decision: 'denied' is not one of allow, deny, audit-deny; did you mean 'deny'?")]
    [InlineData("events|--decision|BLOCK", 2, "did you mean 'deny'?")]
    [InlineData("grant|revoke|", 2, "grant revoke: ID must not be empty")]
    [InlineData("grant|list|--admin|127.0.0.1", 2, "--admin: expected ADDR:PORT")]
    [InlineData("policy|explain", 2, "Required argument missing")]
    [InlineData("ca|init|--dir|policy.yaml/ca", 1, "policy.yaml/ca")]
    [InlineData("env|--proxy|https://127.0.0.1:8080", 2, "--proxy: the proxy listener speaks plain HTTP")]
    [InlineData("env|--proxy|ftp://127.0.0.1:3128", 2, "--proxy: expected http://ADDR:PORT or ADDR:PORT, got 'ftp://127.0.0.1:3128'")]
    [InlineData("env|--proxy|unix:/run/proxyguard/proxy.sock", 2, "--proxy: sandboxes reach the proxy over TCP")]
    [InlineData("policy|replay|policy.yaml|--events|events.jsonl|--examples|x", 2, "--examples: expected examples per group (a whole number from 0 to 1000), got 'x'")]
    [InlineData("policy|replay|policy.yaml|--events|events.jsonl|--examples|5000", 2, "--examples: expected examples per group")]
    [InlineData("policy|explain|policy.yaml|GET|https://api.github.com/|--data-dir|", 2, "--data-dir: must not be empty")]
    public async Task Each_bad_input_fails_on_one_line_without_a_stack_trace(string commandLine, int exitCode, string expected)
    {
        using var dir = new TempDir();
        dir.Write("policy.yaml", "version: 1\n");
        var result = await Cli.RunAsync(dir.Path, commandLine.Split('|'));
        Assert.True(result.ExitCode == exitCode, result.All);
        AssertNoStackTrace(result);
        var reasons = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l != "Run 'proxyguard --help' for usage.").ToList();
        var line = Assert.Single(reasons);
        Assert.StartsWith("proxyguard: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", line, StringComparison.Ordinal);
        Assert.Equal(commandLine.StartsWith("env|", StringComparison.Ordinal) ? "false\n" : string.Empty, result.Stdout); // eval "$(proxyguard env ...)" fails
        Assert.Equal(["policy.yaml"], Entries(dir.Path));
    }

    [Fact]
    public async Task Env_without_a_CA_creates_nothing_says_where_it_looked_and_makes_eval_fail()
    {
        using var dir = new TempDir();
        var result = await Cli.RunAsync(dir.Path, "env");
        Assert.Equal(1, result.ExitCode);
        AssertNoStackTrace(result);
        Assert.Empty(Entries(dir.Path)); // no certs-dev/, no .proxyguard/
        var line = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(Path.Combine(dir.Path, "certs-dev"), line, StringComparison.Ordinal);
        Assert.Contains("proxyguard ca init --dir", line, StringComparison.Ordinal);
        Assert.Equal("false\n", result.Stdout);

        // What an operator's script does: it must stop, not run the agent without the proxy.
        var script = $"set -e; eval \"$(dotnet '{ProxyProcess.DllPath}' env)\"; echo REACHED";
        var shell = await Cli.RunProgramAsync("bash", ["-c", script], dir.Path, null);
        Assert.NotEqual(0, shell.ExitCode);
        Assert.DoesNotContain("REACHED", shell.Stdout, StringComparison.Ordinal);
        var chained = await Cli.RunProgramAsync("bash", ["-c", $"eval \"$(dotnet '{ProxyProcess.DllPath}' env)\" && echo REACHED"], dir.Path, null);
        Assert.DoesNotContain("REACHED", chained.Stdout, StringComparison.Ordinal);
        Assert.Empty(Entries(dir.Path));

        // A usage error fails eval the same way; dotenv and json print nothing on failure.
        Assert.Equal("false\n", (await Cli.RunAsync(dir.Path, "env", "--no-such-flag")).Stdout);
        Assert.Equal(string.Empty, (await Cli.RunAsync(dir.Path, "env", "--format", "dotenv")).Stdout);
        Assert.Equal(string.Empty, (await Cli.RunAsync(dir.Path, "env", "--format", "json")).Stdout);
    }

    [Fact]
    public async Task Env_takes_the_proxy_as_a_url_or_as_ADDR_PORT()
    {
        using var dir = new TempDir();
        Assert.Equal(0, (await Cli.RunAsync(dir.Path, "ca", "init", "--dir", "ca")).ExitCode);
        foreach (var form in new[] { "127.0.0.1:3128", "http://127.0.0.1:3128" })
        {
            var result = await Cli.RunAsync(dir.Path, "env", "--ca-dir", "ca", "--proxy", form, "--format", "dotenv");
            Assert.True(result.ExitCode == 0, result.All);
            Assert.Contains("\nHTTPS_PROXY=http://127.0.0.1:3128\n", result.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Env_with_an_invalid_policy_fails_and_eval_fails()
    {
        using var dir = new TempDir();
        Assert.Equal(0, (await Cli.RunAsync(dir.Path, "ca", "init", "--dir", "ca")).ExitCode);
        dir.Write("bad.yaml", "version: 1\nrules:\n  - name: x\n    hosts: [api.github.com]\n    action: maybe\n");
        var result = await Cli.RunAsync(dir.Path, "env", "--policy", "bad.yaml", "--ca-dir", "ca");
        Assert.Equal(1, result.ExitCode);
        AssertNoStackTrace(result);
        Assert.Contains("bad.yaml:5:", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("false\n", result.Stdout);
        var shell = await Cli.RunProgramAsync("bash", ["-c", $"eval \"$(dotnet '{ProxyProcess.DllPath}' env --policy bad.yaml --ca-dir ca)\""], dir.Path, null);
        Assert.NotEqual(0, shell.ExitCode);

        // A policy named explicitly but missing is an error too (a typo must not silently drop the placeholders).
        var missing = await Cli.RunAsync(dir.Path, "env", "--policy", "polcy.yaml", "--ca-dir", "ca");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains(Path.Combine(dir.Path, "polcy.yaml"), missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Env_never_invents_an_installation_key_so_placeholders_cannot_silently_differ()
    {
        using var dir = new TempDir();
        Assert.Equal(0, (await Cli.RunAsync(dir.Path, "ca", "init", "--dir", "ca")).ExitCode);
        dir.Write("policy.yaml", SecretPolicy);

        // The proxy's data directory is not the default one: env must not make up a key in ./.proxyguard.
        var result = await Cli.RunAsync(dir.Path, "env", "--policy", "policy.yaml", "--ca-dir", "ca");
        Assert.Equal(1, result.ExitCode);
        AssertNoStackTrace(result);
        Assert.Contains(Path.Combine(dir.Path, ".proxyguard", "installation.key"), result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--data-dir", result.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File(".proxyguard")));
        Assert.DoesNotContain("GITHUB_TOKEN", result.Stdout, StringComparison.Ordinal);

        // An explicit placeholder needs no key.
        dir.Write("explicit.yaml", SecretPolicy + "\n    placeholder: PG_EXPLICIT_GITHUB_PLACEHOLDER_1\n");
        var explicitResult = await Cli.RunAsync(dir.Path, "env", "--policy", "explicit.yaml", "--ca-dir", "ca", "--format", "dotenv");
        Assert.True(explicitResult.ExitCode == 0, explicitResult.All);
        Assert.Contains("GITHUB_TOKEN=PG_EXPLICIT_GITHUB_PLACEHOLDER_1\n", explicitResult.Stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File(".proxyguard")));
    }

    /// <summary>
    /// One rule for where the installation key (derived placeholders) lives: DATA_DIR/installation.key, created only by
    /// <c>run</c>. env and explain given the proxy's --data-dir use that key, so the placeholder env prints is the one
    /// explain recognises and substitutes; from anywhere else env refuses and explain says its placeholders are not the proxy's.
    /// </summary>
    [Fact]
    public async Task Run_env_and_explain_use_one_installation_key_in_the_data_directory()
    {
        using var dir = new TempDir();
        await using (var proxy = await ProxyProcess.StartAsync(dir.File("p"), SecretPolicy, environment: new Dictionary<string, string> { ["PG_TEST_GITHUB_TOKEN"] = "synthetic-github-value-0123456789" }))
        {
            Assert.True(File.Exists(Path.Combine(proxy.DataDirectory, "installation.key")));
        }

        var dataDir = Path.Combine(dir.File("p"), "data");
        var caDir = Path.Combine(dir.File("p"), "ca");
        var policy = Path.Combine(dir.File("p"), "policy.yaml");
        var env = await Cli.RunAsync(dir.Path, "env", "--policy", policy, "--ca-dir", caDir, "--data-dir", dataDir, "--format", "dotenv");
        Assert.True(env.ExitCode == 0, env.All);
        var placeholder = ProxyProcess.Unquote(env.Stdout.Split('\n').Single(l => l.StartsWith("GITHUB_TOKEN=", StringComparison.Ordinal))["GITHUB_TOKEN=".Length..]);
        Assert.Equal(placeholder, (await Cli.RunAsync(dir.Path, "env", "--policy", policy, "--ca-dir", caDir, "--data-dir", dataDir, "--format", "dotenv"))
            .Stdout.Split('\n').Single(l => l.StartsWith("GITHUB_TOKEN=", StringComparison.Ordinal))["GITHUB_TOKEN=".Length..]);

        var work = Path.Combine(dir.Path, "work");
        Directory.CreateDirectory(work);
        string[] Explain(params string[] extra) =>
            ["policy", "explain", policy, "GET", "https://api.github.com/user", "-H", "Authorization: Bearer " + placeholder, .. extra];

        var same = await Cli.RunAsync(work, Explain("--data-dir", dataDir));
        Assert.True(same.ExitCode == 0, same.All);
        Assert.Contains("secrets:   github", same.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("installation.key", same.Stderr, StringComparison.Ordinal);

        // Elsewhere (no --data-dir, another directory): not the proxy's key, and it says so; nothing is created.
        var elsewhere = await Cli.RunAsync(work, Explain());
        Assert.Contains(Path.Combine(work, ".proxyguard", "installation.key"), elsewhere.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("secrets:   github", elsewhere.Stdout, StringComparison.Ordinal);
        Assert.Empty(Entries(work));
        var envElsewhere = await Cli.RunAsync(work, "env", "--policy", policy, "--ca-dir", caDir);
        Assert.Equal(1, envElsewhere.ExitCode);
        Assert.Empty(Entries(work));
    }

    [Fact]
    public async Task Explain_creates_nothing_and_says_its_placeholders_are_not_the_proxys()
    {
        using var dir = new TempDir();
        var policy = dir.Write("policy.yaml", SecretPolicy);
        var work = Path.Combine(dir.Path, "work");
        Directory.CreateDirectory(work);
        var result = await Cli.RunAsync(work, "policy", "explain", policy, "GET", "https://api.github.com/user");
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Empty(Entries(work));
        Assert.Contains("installation.key", result.Stderr, StringComparison.Ordinal);

        // No secret with a derived placeholder: nothing to say.
        var plain = dir.Write("plain.yaml", "version: 1\nrules:\n  - {name: a, hosts: [api.github.com], action: allow}\n");
        var quiet = await Cli.RunAsync(work, "policy", "explain", plain, "GET", "https://api.github.com/user");
        Assert.True(quiet.ExitCode == 0, quiet.All);
        Assert.Empty(quiet.Stderr);
        Assert.Empty(Entries(work));
    }
}
