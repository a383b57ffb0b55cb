using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Policy.Tests;

/// <summary>Issue 19: validation messages that say what was meant, warnings, near-misses, ports and cases with content.</summary>
public sealed class AuthorFeedbackTests
{
    private static readonly PolicyLoadOptions s_detectors = new()
    {
        CheckFilePermissions = false,
        KnownDetectorIds = ["aws-access-key-id", "github-token", "private-key"],
    };

    private static PolicyDiagnostic Single(string yaml, PolicyLoadOptions? options = null) => Assert.Single(TestPolicies.Errors(yaml, options));

    [Fact]
    public void Quoted_version_says_remove_the_quotes()
    {
        var d = Single("version: \"1\"\n");
        Assert.Equal((1, 10), (d.Line, d.Column));
        Assert.Contains("plain number 1, not the string \"1\"", d.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("reads version 1", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tab_in_indentation_is_reported_where_the_tab_is()
    {
        var d = Single("version: 1\ndefault: deny\nrules:\n  - name: a\n    hosts: [x.example.com]\n    action: allow\n  - name: b\n\thosts: [y.example.com]\n");
        Assert.Equal((8, 1), (d.Line, d.Column));
        Assert.Contains("tab", d.Message, StringComparison.Ordinal);

        var trailing = Single("version: 1\nrules:\n  - name: a\n    hosts: [x.example.com]\n    action: allow\n\n\t\n");
        Assert.Equal((7, 1), (trailing.Line, trailing.Column));
    }

    [Fact]
    public void A_port_in_a_wildcard_host_says_ports_go_in_ports()
    {
        var d = Single("version: 1\nrules:\n  - name: a\n    hosts: [\"*.npmjs.org:443\"]\n    action: allow\n");
        Assert.Contains("put the port in 'ports'", d.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("IPv6", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_url_where_a_host_or_cidr_belongs_says_what_was_expected()
    {
        var cidr = Single("version: 1\nnetwork:\n  allow_destinations: [\"https://10.0.0.1/\"]\n");
        Assert.Contains("expected an IP address or a CIDR such as 10.0.0.0/8", cidr.Message, StringComparison.Ordinal);
        Assert.Contains("not a URL", cidr.Message, StringComparison.Ordinal);

        var host = Single("version: 1\nrules:\n  - name: a\n    hosts: [\"https://api.example.com/v1\"]\n    action: allow\n");
        Assert.Contains("not a URL", host.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_detector_id_gets_did_you_mean()
    {
        var errors = TestPolicies.Errors("version: 1\ncontent:\n  builtin: [aws-acess-key-id]\n  exempt:\n    - detectors: [github-tokn]\n      hosts: [x.example.com]\n", s_detectors);
        Assert.Equal(2, errors.Count);
        Assert.Contains("did you mean 'aws-access-key-id'?", errors[0].Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'github-token'?", errors[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Regex_looking_path_globs_load_with_a_warning()
    {
        var result = PolicyLoader.LoadText("version: 1\nrules:\n  - name: a\n    hosts: [x.example.com]\n    paths: [\"/v1/.*\", \"/plain/**\"]\n    action: allow\n", "test.yaml");
        Assert.True(result.Success);
        var w = Assert.Single(result.Warnings);
        Assert.Equal((5, 13), (w.Line, w.Column));
        Assert.Contains("looks like a regular expression", w.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean '/v1/**'?", w.Message, StringComparison.Ordinal);

        var error = Single("version: 1\nrules:\n  - name: a\n    hosts: [x.example.com]\n    paths: [\"^/api/(a|b)$\"]\n    action: allow\n");
        Assert.Contains("not regular expressions", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_secret_bound_to_hosts_no_rule_allows_is_warned_about()
    {
        var result = PolicyLoader.LoadText("""
            version: 1
            rules:
              - name: gh
                hosts: [api.github.com, "*.corp.example.com"]
                action: allow
              - name: passthrough
                hosts: [tunnel.example.com]
                inspect: false
                action: allow
            secrets:
              - name: reached
                value: env:A
                hosts: [api.github.com]
              - name: wildcard-reached
                value: env:B
                hosts: ["*.example.com"]
              - name: orphan
                value: env:C
                hosts: [nowhere.example.org]
              - name: tunnel-only
                value: env:D
                hosts: [tunnel.example.com]
            """, "test.yaml");
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        Assert.Equal(2, result.Warnings.Count);
        Assert.Contains("secret 'orphan'", result.Warnings[0].Message, StringComparison.Ordinal);
        Assert.Equal((17, 5), (result.Warnings[0].Line, result.Warnings[0].Column));
        Assert.Contains("secret 'tunnel-only'", result.Warnings[1].Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http", 443, false)]
    [InlineData("ws", 443, false)]
    [InlineData("https", 443, true)]
    [InlineData("http", 8080, true)]
    public void Ports_443_means_https_only(string scheme, int port, bool allowed)
    {
        var policy = TestPolicies.Load("version: 1\nrules:\n  - name: web\n    hosts: [x.example.com]\n    ports: [443, 8080]\n    action: allow\n");
        var decision = PolicyDecider.Decide(policy, new DecisionInput(null, scheme, "x.example.com", port, "GET", "/"));
        Assert.Equal(allowed, decision.Verdict == Verdict.Allow);
        if (!allowed)
        {
            Assert.Equal("plain-http-on-https-port", decision.Reason.Name);
            Assert.Contains(policy.NearMisses(null, scheme, "x.example.com", port, "GET", "/"), m => m.Contains("port 443 is for HTTPS only", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Near_misses_say_what_each_rule_lacked()
    {
        var policy = TestPolicies.Load("""
            version: 1
            rules:
              - name: read
                hosts: [api.github.com]
                methods: [GET]
                action: allow
              - name: issues
                hosts: [api.github.com]
                methods: [POST]
                paths: ["/repos/acme/**"]
                action: allow
              - name: other
                hosts: [example.com]
                action: allow
            """);
        var misses = policy.NearMisses(null, "https", "api.github.com", 443, "POST", "/repos/evil/x");
        Assert.Equal(2, misses.Count);
        Assert.Equal("rule 'read' (line 3): host and port matched; method POST is not in [GET]", misses[0]);
        Assert.Equal("rule 'issues' (line 7): host, port and method matched; path /repos/evil/x matches none of [/repos/acme/**]", misses[1]);
        Assert.Empty(policy.NearMisses(null, "https", "unknown.example.net", 443, "GET", "/"));
    }

    [Fact]
    public void Cases_carry_headers_a_body_and_expected_findings_and_secrets()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "body.json"), "{\"k\":\"{{placeholder:api}}\"}");
        var casesPath = Path.Combine(dir.Path, "c.yaml");
        File.WriteAllText(casesPath, """
            cases:
              - name: with content
                method: POST
                url: https://api.example.com/x
                headers: { Authorization: "Bearer {{placeholder:api}}", X-Other: v }
                body_file: body.json
                expect: { decision: allow, findings: [], secrets: [api] }
              - name: inline
                url: https://api.example.com/x
                body: hello
                expect: { decision: allow }
              - name: bad
                url: https://api.example.com/x
                body: a
                body_file: b
                expect: { decision: allow, findings: nope }
            """);
        var (cases, diagnostics) = PolicyCaseRunner.LoadFile(casesPath);
        Assert.Equal(2, diagnostics.Count);
        Assert.Equal((15, 16), (diagnostics[0].Line, diagnostics[0].Column));
        Assert.Equal(2, cases.Count);
        var first = cases[0];
        Assert.Equal(2, first.Headers.Count);
        Assert.Equal("{\"k\":\"{{placeholder:api}}\"}", System.Text.Encoding.UTF8.GetString(first.Body!));
        Assert.Equal(["api"], first.Expect.Secrets);
        Assert.Empty(first.Expect.Findings!);
        Assert.True(first.NeedsContentStages);

        // The rules-only runner refuses to pass a case it cannot fully check.
        var policy = TestPolicies.Load("version: 1\nrules:\n  - name: a\n    hosts: [api.example.com]\n    action: allow\n");
        var results = PolicyCaseRunner.Run(policy, cases);
        Assert.All(results, r => Assert.False(r.Passed));

        var secrets = new Dictionary<string, (string, string)> { ["api"] = ("PH_API_0123456789ABCDEF", "value") };
        Assert.Equal("Bearer PH_API_0123456789ABCDEF", PolicyCaseRunner.ExpandMarkers("Bearer {{placeholder:api}}", secrets, out _));
        Assert.Null(PolicyCaseRunner.ExpandMarkers("{{placeholder:nope}}", secrets, out var error));
        Assert.Contains("names no secret", error, StringComparison.Ordinal);
    }

    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("pg-cases-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
