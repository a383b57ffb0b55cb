namespace ProxyGuard.Policy.Tests;

public sealed class CaseRunnerTests
{
    private static readonly CompiledPolicy s_policy = TestPolicies.Load("""
        version: 1
        rules:
          - name: read
            hosts: [api.example.com]
            methods: [GET]
            action: allow
        """);

    [Fact]
    public void FailingCasesExplainThemselves()
    {
        var report = PolicyCaseRunner.RunText(s_policy, """
            cases:
              - name: passes
                url: https://api.example.com/x
                expect: { decision: allow, rule: read }
              - name: wrong decision
                method: POST
                url: https://api.example.com/x
                expect: { decision: allow, rule: read }
              - name: wrong rule
                url: https://api.example.com/x
                expect: { decision: allow, rule: other }
            """, "c.yaml");
        Assert.Empty(report.Diagnostics);
        Assert.Equal(1, report.Passed);
        Assert.Equal(2, report.Failed);
        Assert.False(report.Success);
        Assert.Equal("1 passed, 2 failed", report.Summary);
        var wrongDecision = report.Results[1];
        Assert.False(wrongDecision.Passed);
        Assert.Equal(5, wrongDecision.Case.Line);
        Assert.Equal(5, wrongDecision.Case.Column);
        Assert.StartsWith("expected allow, got deny; expected rule 'read', got 'default' — POST https://api.example.com:443/x was denied by rule 'default' at the request stage (reason: no-rule-matched)", wrongDecision.Message, StringComparison.Ordinal);
        Assert.StartsWith("FAIL wrong decision (c.yaml:5:5): ", wrongDecision.ToString(), StringComparison.Ordinal);
        Assert.Equal("expected rule 'other', got 'read' — GET https://api.example.com:443/x was allowed by rule 'read' at the request stage (reason: rule-allow)", report.Results[2].Message);
    }

    [Fact]
    public void A_case_in_an_audit_mode_events_words_passes()
    {
        // An audit-mode event records decision audit-deny; a case copied from it says so. deny also matches it (the same
        // cases serve both modes); audit-deny does not match an enforced deny.
        var audit = TestPolicies.Load("""
            version: 1
            mode: audit
            rules:
              - name: read
                hosts: [api.example.com]
                methods: [GET]
                action: allow
            """);
        const string cases = """
            cases:
              - name: copied from an audit-mode event
                method: POST
                url: https://api.example.com/x
                expect: { decision: audit-deny, rule: default, reason: no-rule-matched }
              - name: the enforce decision
                method: POST
                url: https://api.example.com/x
                expect: { decision: deny, rule: default, reason: no-rule-matched }
              - name: allowed is not audit-deny
                url: https://api.example.com/x
                expect: { decision: audit-deny }
            """;
        var inAudit = PolicyCaseRunner.RunText(audit, cases, "c.yaml");
        Assert.Empty(inAudit.Diagnostics);
        Assert.Equal([true, true, false], inAudit.Results.Select(r => r.Passed));
        Assert.StartsWith("expected audit-deny, got allow", inAudit.Results[2].Message, StringComparison.Ordinal);
        Assert.Equal("audit-deny", inAudit.Results[0].Actual.Verdict);
        Assert.Contains("was audit-denied (forwarded in audit mode; enforce mode would deny it) by rule 'default'",
            PolicyCaseRunner.RunText(audit, cases.Replace("decision: audit-deny, rule: default", "decision: audit-deny, rule: read", StringComparison.Ordinal), "c.yaml").Results[0].Message,
            StringComparison.Ordinal);

        var inEnforce = PolicyCaseRunner.RunText(s_policy, cases, "c.yaml");
        Assert.Equal([false, true, false], inEnforce.Results.Select(r => r.Passed));
        Assert.StartsWith("expected audit-deny, got deny —", inEnforce.Results[0].Message, StringComparison.Ordinal);
        Assert.StartsWith("FAIL copied from an audit-mode event (c.yaml:2:5): ", inEnforce.Results[0].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ParseErrorsCarryPositions()
    {
        var report = PolicyCaseRunner.RunText(s_policy, """
            cases:
              - name: a
                url: ftp://x/
                expect: { decision: allow }
              - name: a
                url: https://x/
                expct: { decision: allow }
              - name: c
                url: https://x/
                connect: maybe
                expect: { decision: permit, mode: tunnel }
            """, "c.yaml");
        Assert.Empty(report.Results);
        Assert.Equal(
            [
                "c.yaml:3:10: cases[0].url: unsupported URL scheme 'ftp' (expected http, https, ws or wss)",
                "c.yaml:5:5: cases[1]: missing required key 'expect'",
                "c.yaml:5:11: cases[1].name: duplicate case name 'a'",
                "c.yaml:7:5: unknown key 'expct' in cases[1]; did you mean 'expect'?",
                "c.yaml:10:14: cases[2].connect: expected true or false, got 'maybe'",
                "c.yaml:11:25: cases[2].expect.decision: invalid value 'permit'; expected allow | deny | audit-deny",
                "c.yaml:11:39: cases[2].expect.mode: invalid value 'tunnel'; expected intercept | passthrough | tcp",
            ],
            report.Diagnostics.Select(d => d.ToString()));
    }

    [Fact]
    public void MissingCasesFileIsADiagnostic()
    {
        var report = PolicyCaseRunner.RunFile(s_policy, "/nonexistent/cases.yaml");
        Assert.False(report.Success);
        Assert.Single(report.Diagnostics);
    }

    [Theory]
    [InlineData("https://api.example.com/a/b?c=d", "https", "api.example.com", 443, "/a/b?c=d")]
    [InlineData("http://api.example.com", "http", "api.example.com", 80, "/")]
    [InlineData("HTTPS://api.example.com:8443/%2e%2e/x", "https", "api.example.com", 8443, "/%2e%2e/x")]
    [InlineData("https://[::1]:9000/x", "https", "[::1]", 9000, "/x")]
    [InlineData("https://[::1]/x", "https", "[::1]", 443, "/x")]
    [InlineData("wss://chat.example.com/s", "wss", "chat.example.com", 443, "/s")]
    [InlineData("https://h?x", "https", "h", 443, "/?x")]
    public void ParsesUrlsWithoutNormalisingThePath(string url, string scheme, string host, int port, string rawPath)
    {
        Assert.True(TargetUrl.TryParse(url, out var target, out var error), error);
        Assert.Equal(new TargetUrl(scheme, host, port, rawPath), target);
    }

    [Theory]
    [InlineData("api.example.com/x")]
    [InlineData("ftp://x/")]
    [InlineData("https://:443/")]
    [InlineData("https://x:0/")]
    [InlineData("https://x:99999/")]
    [InlineData("https://user:pw@x/")]
    public void RejectsBadUrls(string url) => Assert.False(TargetUrl.TryParse(url, out _, out _));
}
