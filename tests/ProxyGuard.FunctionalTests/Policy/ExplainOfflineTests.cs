using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary><c>proxyguard policy explain</c> as a process: its answer depends on the policy and the request only.</summary>
[Collection("proxy")]
public sealed class ExplainOfflineTests
{
    private const string Policy = """
        version: 1
        default: deny
        rules:
          - name: llm
            hosts: [llm.example.com]
            methods: [POST]
            action: allow
        secrets:
          - name: llm-key
            value: env:PG_EXPLAIN_SHELL_KEY
            hosts: [llm.example.com]
            in: [headers]
        """;

    [Fact]
    public async Task Explain_decides_on_placeholders_whatever_the_authors_shell_holds()
    {
        using var dir = new TempDir();
        var policy = dir.Write("p.yaml", Policy);
        var body = dir.Write("body.txt", "hello world");

        // The same request, explained in a shell without the secret and in one where its variable holds a short
        // value that also occurs in the body: the proxy host (whose value is not "hello") allows it, so must explain.
        var args = new[] { "policy", "explain", policy, "POST", "https://llm.example.com/v1/chat", "--body-file", body, "--data-dir", dir.File("data") };
        var unset = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, .. args], dir.Path, new Dictionary<string, string>());
        var set = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, .. args], dir.Path, new Dictionary<string, string> { ["PG_EXPLAIN_SHELL_KEY"] = "hello" });
        Assert.True(unset.ExitCode == 0, unset.All);
        Assert.True(set.ExitCode == 0, set.All);
        Assert.Equal(Decision(unset.Stdout), Decision(set.Stdout));
        Assert.Equal("allow|llm|rule-allow|none", Decision(set.Stdout));

        // Only the shell without the secret gets the warning, naming where it looked; neither prints the value.
        Assert.Matches(new Regex(@"^warning:\s+secret 'llm-key' does not resolve here \(env:PG_EXPLAIN_SHELL_KEY: environment variable PG_EXPLAIN_SHELL_KEY is not set\); the decision above does not depend on it", RegexOptions.Multiline), unset.Stdout);
        Assert.DoesNotContain("warning:", set.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("hello", Regex.Replace(set.All, "^request:.*$", string.Empty, RegexOptions.Multiline), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_takes_the_markers_of_cases_files_and_matches_the_proxys_secret_gate()
    {
        using var dir = new TempDir();
        var policy = dir.Write("p.yaml", Policy);
        var body = dir.Write("body.json", """{"prompt": "my key is {{placeholder:llm-key}}"}""");
        async Task<string> Explain(params string[] extra)
        {
            var result = await Cli.RunProgramAsync(
                "dotnet", [ProxyProcess.DllPath, "policy", "explain", policy, "POST", "https://llm.example.com/v1/chat", "--data-dir", dir.File("data"), .. extra],
                dir.Path, new Dictionary<string, string>());
            Assert.DoesNotContain("pgstandin", result.All, StringComparison.Ordinal);
            return Decision(result.Stdout);
        }

        // The placeholder where the secret is bound (a header) is substituted; in a body (in: [headers]) it is misuse;
        // the real value itself (written {{value:NAME}}, never on a command line) is a finding.
        Assert.Equal("allow|llm|rule-allow|llm-key", await Explain("-H", "Authorization: Bearer {{placeholder:llm-key}}"));
        Assert.Equal("deny|secrets|secret-misuse|none", await Explain("-H", "Content-Type: application/json", "--body-file", body));
        Assert.Equal("deny|vault-secret|content-finding|none", await Explain("-H", "Authorization: Bearer {{value:llm-key}}"));

        var unknown = await Cli.RunProgramAsync(
            "dotnet", [ProxyProcess.DllPath, "policy", "explain", policy, "POST", "https://llm.example.com/v1/chat", "-H", "X-Key: {{placeholder:nope}}"],
            dir.Path, new Dictionary<string, string>());
        Assert.True(unknown.ExitCode == 2, unknown.All);
        Assert.Contains("{{placeholder:nope}} names no secret of the policy", unknown.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://10.1.2.3/x", "", "deny|network|private-destination|none")]
    [InlineData("http://10.1.2.3/x", "", "deny|network|private-destination|none")]
    [InlineData("https://[::ffff:10.1.2.3]/x", "", "deny|network|private-destination|none")]
    [InlineData("https://10.1.2.3/x", "network: { allow_destinations: [10.0.0.0/8] }", "allow|lan|rule-allow|none")]
    public async Task Explain_applies_the_network_guard_to_address_literals(string url, string network, string expected)
    {
        // The proxy refuses a private address the rules allow (a CONNECT before any TLS, a plain request when dialled)
        // unless network.allow_destinations lists it; no DNS is needed to know that for an IP literal.
        using var dir = new TempDir();
        var policy = dir.Write("p.yaml", $"""
            version: 1
            default: deny
            {network}
            rules:
              - name: lan
                hosts: ["10.1.2.3"]
                action: allow
            """);
        var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "explain", policy, "GET", url], dir.Path, new Dictionary<string, string>());
        Assert.Equal(expected, Decision(result.Stdout));
        Assert.Equal(expected.StartsWith("allow", StringComparison.Ordinal) ? 0 : 1, result.ExitCode);
    }

    /// <summary>decision|rule|reason|secrets of an explanation.</summary>
    private static string Decision(string stdout)
    {
        string Field(string name) => Regex.Match(stdout, $@"^{name}:\s+(\S+)", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value : "?";
        var secrets = Regex.Match(stdout, @"^secrets:\s+(.+)$", RegexOptions.Multiline).Groups[1].Value.Trim();
        return $"{Field("decision")}|{Field("rule")}|{Field("reason")}|{(secrets == "none injected" ? "none" : secrets)}";
    }
}
