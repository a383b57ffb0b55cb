using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Tests.Support;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;
using static ProxyGuard.Engine.Tests.Support.TestSnapshots;

namespace ProxyGuard.Engine.Tests.Pipeline;

public sealed class OfflineDeciderTests
{
    private static Task<OfflineOutcome> Decide(string method, string url, KeyValuePair<string, string>[]? headers = null, byte[]? body = null,
        Runtime.ProxySnapshot? snapshot = null)
    {
        Assert.True(TargetUrl.TryParse(url, out var target, out var error), error);
        return OfflineDecider.DecideAsync(snapshot ?? Enforce, null, method, target!, headers ?? [], body);
    }

    [Fact]
    public async Task Allowed_request_names_the_rule()
    {
        var outcome = await Decide("GET", "https://api.example.com/v1/x");
        Assert.Equal(Verdict.Allow, outcome.Decision.Verdict);
        Assert.Equal("api-all", outcome.Decision.Rule);
        Assert.Equal("rule-allow", outcome.Decision.Reason.Name);
        Assert.Null(outcome.Message);
        Assert.Empty(outcome.Injected);
    }

    [Fact]
    public async Task Substitution_is_reported()
    {
        var outcome = await Decide("GET", "https://api.example.com/v1", [H("Authorization", "Bearer " + ApiPlaceholder)]);
        Assert.Equal(Verdict.Allow, outcome.Decision.Verdict);
        Assert.Equal(new[] { "api" }, outcome.Injected);
    }

    [Fact]
    public async Task Deny_rule_and_default_are_reported_with_their_reasons()
    {
        var denied = await Decide("GET", "https://api.example.com/admin/x");
        Assert.Equal(("admin-deny", "rule-deny"), (denied.Decision.Rule, denied.Decision.Reason.Name));
        Assert.NotNull(denied.Message);
        // An https URL is decided as its CONNECT first: no rule can allow the host and port.
        var unknown = await Decide("GET", "https://unknown.example/");
        Assert.Equal(("default", "no-rule-allows-host-port"), (unknown.Decision.Rule, unknown.Decision.Reason.Name));
        var plain = await Decide("DELETE", "http://plain.example.net/");
        Assert.Equal(("default", "no-rule-matched"), (plain.Decision.Rule, plain.Decision.Reason.Name));
    }

    [Fact]
    public async Task Content_finding_is_reported()
    {
        var outcome = await Decide("POST", "https://api.example.com/v1", [H("X-Token", AcmeToken)]);
        Assert.Equal(Verdict.Deny, outcome.Decision.Verdict);
        Assert.Equal("content-finding", outcome.Decision.Reason.Name);
        Assert.Equal("acme-token", outcome.Decision.Rule);
        Assert.Contains(outcome.Findings, f => f.Location == "header" && f.Detector == "acme-token");
    }

    [Fact]
    public async Task Credential_in_an_https_host_is_refused_before_the_rules()
    {
        var outcome = await Decide("GET", $"https://{AcmeToken}.api.example.com/");
        Assert.Equal("content-finding", outcome.Decision.Reason.Name);
        Assert.Equal(Verdict.Deny, outcome.Decision.Verdict);
    }

    [Fact]
    public async Task Placeholder_as_a_query_name_is_placeholder_position_and_injects_nothing()
    {
        var outcome = await Decide("GET", $"https://api.example.com/x?{ApiPlaceholder}=1", [H("Authorization", "Bearer " + ApiPlaceholder)]);
        Assert.Equal("placeholder-position", outcome.Decision.Reason.Name);
        Assert.Equal(Verdict.Deny, outcome.Decision.Verdict);
        Assert.Empty(outcome.Injected);
    }

    [Fact]
    public async Task Placeholder_toward_an_unbound_host_is_misuse()
    {
        var outcome = await Decide("GET", "https://other.example.org/", [H("Authorization", "Bearer " + ApiPlaceholder)]);
        Assert.Equal("secret-misuse", outcome.Decision.Reason.Name);
        Assert.Empty(outcome.Injected);
    }

    [Fact]
    public async Task Placeholder_toward_plain_http_is_refused()
    {
        var outcome = await Decide("GET", "http://plain.example.net/", [H("Authorization", "Bearer " + ApiPlaceholder)]);
        Assert.Equal("secret-plain-http", outcome.Decision.Reason.Name);
    }

    [Fact]
    public async Task Audit_mode_reports_audit_deny_for_a_rule_refusal()
    {
        var outcome = await Decide("GET", "https://api.example.com/admin/x", snapshot: AuditMode);
        Assert.Equal(Verdict.AuditDeny, outcome.Decision.Verdict);
        Assert.Equal("admin-deny", outcome.Decision.Rule);
    }

    [Fact]
    public async Task Request_denied_by_the_rules_is_not_content_scanned()
    {
        var outcome = await Decide("GET", "https://unknown.example/", [H("X-Token", AcmeToken)]);
        Assert.Equal("no-rule-allows-host-port", outcome.Decision.Reason.Name);
        Assert.Empty(outcome.Findings);
    }

    [Fact]
    public async Task A_private_address_literal_is_refused_by_the_network_guard_in_the_proxys_order()
    {
        var snapshot = Build("""
            version: 1
            default: deny
            rules:
              - name: lan
                hosts: ["10.1.2.3"]
                paths: ["/ok/**"]
                action: allow
            """);

        // https: the CONNECT is allowed (a rule with paths may allow requests inside), then the network guard refuses
        // the address before any TLS, so the request's own rules (no-rule-matched for /other) never decide.
        var tunnelled = await Decide("GET", "https://10.1.2.3/other", snapshot: snapshot);
        Assert.Equal((Verdict.Deny, "network", "private-destination"), (tunnelled.Decision.Verdict, tunnelled.Decision.Rule, tunnelled.Decision.Reason.Name));

        // Plain http: judged when dialled, after the content scan (a finding decides first).
        var plain = await Decide("GET", "http://10.1.2.3/ok/x", snapshot: snapshot);
        Assert.Equal((Verdict.Deny, "network", "private-destination"), (plain.Decision.Verdict, plain.Decision.Rule, plain.Decision.Reason.Name));

        // A name needs DNS: not judged offline.
        var named = await Decide("GET", "http://10.1.2.3.nip.example/ok/x", snapshot: Build("""
            version: 1
            rules:
              - name: any
                hosts: ["*.nip.example"]
                action: allow
            """));
        Assert.Equal(Verdict.Allow, named.Decision.Verdict);
    }
}
