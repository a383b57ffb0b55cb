using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using ProxyGuard.Policy.Decisions;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;

namespace ProxyGuard.Engine.Tests.Pipeline.Stages;

public sealed class RulesStageTests
{
    [Fact]
    public void Allowed_request_records_the_allowing_rule()
    {
        var exchange = WithView(TestSnapshots.Enforce, "GET", "https", "api.example.com", 443, "/v1/x");
        Assert.Null(RulesStage.Run(exchange));
        Assert.Equal(Verdict.Allow, exchange.Decision!.Verdict);
        Assert.Equal("api-all", exchange.Decision.Rule);
        Assert.Equal("rule-allow", exchange.Decision.Reason.Name);
        Assert.Null(exchange.AuditDeny);
    }

    [Fact]
    public void Deny_rule_refuses_with_its_name()
    {
        var exchange = WithView(TestSnapshots.Enforce, "GET", "https", "api.example.com", 443, "/admin/users");
        var denial = RulesStage.Run(exchange);
        Assert.NotNull(denial);
        Assert.Equal("rule-deny", denial.Reason);
        Assert.Equal("admin-deny", denial.Rule);
        Assert.Equal(403, denial.Status);
        Assert.Same(denial.Decision, exchange.Decision);
        Assert.Contains("GET https://api.example.com:443/admin/users", denial.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_matching_rule_is_no_rule_matched_by_default()
    {
        var denial = RulesStage.Run(WithView(TestSnapshots.Enforce, "GET", "https", "unknown.example", 443, "/"));
        Assert.Equal("no-rule-matched", denial?.Reason);
        Assert.Equal("default", denial!.Rule);
    }

    [Theory]
    [InlineData("DELETE", 80)]
    [InlineData("GET", 8080)]
    public void Method_and_port_are_part_of_the_rule(string method, int port) =>
        Assert.Equal("no-rule-matched", RulesStage.Run(WithView(TestSnapshots.Enforce, method, "http", "plain.example.net", port, "/"))?.Reason);

    [Fact]
    public void Plain_rule_allows_its_methods() =>
        Assert.Null(RulesStage.Run(WithView(TestSnapshots.Enforce, "POST", "http", "plain.example.net", 80, "/")));

    [Fact]
    public void Audit_mode_forwards_and_remembers_the_refusal()
    {
        var exchange = WithView(TestSnapshots.AuditMode, "GET", "https", "api.example.com", 443, "/admin/x");
        Assert.Null(RulesStage.Run(exchange));
        Assert.Equal(Verdict.AuditDeny, exchange.AuditDeny!.Verdict);
        Assert.Equal("admin-deny", exchange.AuditDeny.Rule);
        Assert.Equal("rule-deny", exchange.AuditDeny.Reason.Name);
    }

    [Fact]
    public void Upgrade_on_a_rule_without_websocket_is_refused()
    {
        var denial = RulesStage.Run(WithView(TestSnapshots.Enforce, "GET", "https", "api.example.com", 443, "/ws", upgrade: true));
        Assert.Equal("websocket-not-allowed", denial?.Reason);
        Assert.Contains("websocket: true", denial!.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/admin%2Fusers")]
    [InlineData("/admin//users")]
    public void Ambiguous_path_matches_the_deny_rule_instead_of_slipping_to_the_broader_allow(string path)
    {
        // docs/policy.md: with deny /admin/** followed by an allow without paths, /admin%2Fusers is denied.
        var denial = RulesStage.Run(WithView(TestSnapshots.Enforce, "GET", "https", "api.example.com", 443, path));
        Assert.NotNull(denial);
        Assert.Equal(Verdict.Deny, denial.Decision.Verdict);
        Assert.Equal("ambiguous-path", denial.Reason);
    }
}
