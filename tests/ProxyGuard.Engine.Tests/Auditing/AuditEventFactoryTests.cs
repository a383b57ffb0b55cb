using System.Net;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Auditing;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;
using static ProxyGuard.Engine.Tests.Support.TestSnapshots;

namespace ProxyGuard.Engine.Tests.Auditing;

public sealed class AuditEventFactoryTests
{
    private static readonly Decision Allowed = Decision.Allow("api-all", Reasons.RuleAllow, DecisionStage.Rules, PolicyMode.Enforce);

    private static ProxyExchange InTunnel(string method, string rawPath, string rawQuery, params KeyValuePair<string, string>[] headers)
    {
        var exchange = new ProxyExchange(Enforce, null, new ProxyConnectionFeature(Remote, Tunnel(clientId: "agent-1")), 0);
        exchange.View = new RequestView(method, new RequestTarget("https", BoundHost, 443, rawPath, rawQuery), headers, "agent-1");
        return exchange;
    }

    [Fact]
    public void Allowed_request_event_carries_the_decision_and_the_request_as_sent()
    {
        var exchange = InTunnel("GET", "/v1/items", "page=2&token=" + ApiPlaceholder, H("Authorization", "Bearer " + ApiPlaceholder));
        exchange.AddInjected(["api"]);
        exchange.RequestBytes = 10;
        exchange.ResponseBytes = 20;
        var ev = AuditEventFactory.Request(exchange, Allowed, 200);
        Assert.Equal(AuditKinds.Request, ev.Kind);
        Assert.Equal("agent-1", ev.Client);
        Assert.Equal("10.1.2.3", ev.ClientAddress);
        Assert.Equal("GET", ev.Method);
        Assert.Equal("https", ev.Scheme);
        Assert.Equal(BoundHost, ev.Host);
        Assert.Equal(443, ev.Port);
        Assert.Equal("/v1/items?page=&token=", ev.Path);
        Assert.Equal("allow", ev.Decision);
        Assert.Equal("api-all", ev.Rule);
        Assert.Equal("rule-allow", ev.Reason);
        Assert.Equal(200, ev.Status);
        Assert.Equal(new[] { "api" }, ev.SecretsInjected);
        Assert.Equal(10, ev.RequestBytes);
        Assert.Equal(20, ev.ResponseBytes);
    }

    [Fact]
    public void Placeholder_as_a_query_name_never_reaches_the_event()
    {
        // Issue 14: a placeholder as a query parameter name once put the real value into the event's path.
        var exchange = InTunnel("GET", "/x", ApiPlaceholder + "=1&a=2");
        var denial = SecretGateStage.Run(exchange);
        Assert.Equal("placeholder-position", denial?.Reason);
        // The substitution stage refuses the name position too (value positions only), and the event uses the view.
        Assert.Equal("placeholder-position", new SubstitutionStage(null).Run(exchange)?.Reason);
        var ev = AuditEventFactory.Request(exchange, denial!.Decision, denial.Status);
        Assert.Equal("/x?[redacted]=&a=", ev.Path);
        Assert.Equal("deny", ev.Decision);
        Assert.Equal("placeholder-position", ev.Reason);
        Assert.Equal(403, ev.Status);
        AssertNoSecret(ev);
    }

    [Fact]
    public void Real_value_with_a_slash_in_the_path_never_reaches_the_event()
    {
        // The gate refuses the request (secret-real-value), and the event of that refusal must not carry the value.
        const string slashy = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        var snapshot = Build(PolicyYaml().Replace("value: env:PG_TEST_BODY", "value: env:PG_TEST_SLASHY", StringComparison.Ordinal),
            ("PG_TEST_SLASHY", slashy));
        var exchange = new ProxyExchange(snapshot, null, new ProxyConnectionFeature(Remote, Tunnel()), 0);
        exchange.View = new RequestView("GET", new RequestTarget("https", BoundHost, 443, "/upload/" + slashy, ""), [], null);
        var denial = SecretGateStage.Run(exchange);
        Assert.Equal("secret-real-value", denial?.Reason);
        var ev = AuditEventFactory.Request(exchange, denial!.Decision, denial.Status);
        Assert.DoesNotContain(slashy, ev.Path ?? string.Empty, StringComparison.Ordinal);
    }

    [Fact]
    public void Denied_request_records_no_injected_secrets()
    {
        var exchange = InTunnel("GET", "/x", "");
        exchange.AddInjected(["api"]);
        var ev = AuditEventFactory.Request(exchange, Decision.Enforce("secrets", Reasons.SecretMisuse), 403);
        Assert.Empty(ev.SecretsInjected);
        Assert.Equal("secret-misuse", ev.Reason);
    }

    [Fact]
    public void Placeholder_or_real_value_in_a_path_segment_is_redacted()
    {
        var ev = AuditEventFactory.Request(InTunnel("GET", $"/a/{ApiPlaceholder}/b/{ApiReal}", ""), Allowed, 200);
        Assert.Equal("/a/[redacted]/b/[redacted]", ev.Path);
        AssertNoSecret(ev);
    }

    [Fact]
    public void Findings_in_the_path_make_the_scanner_redact_segments()
    {
        var exchange = InTunnel("GET", "/a/" + AcmeToken, "");
        Assert.NotNull(new ContentStage(null).Run(exchange));
        var ev = AuditEventFactory.Request(exchange, Decision.Refuse("acme-token", Reasons.ContentFinding, PolicyMode.Enforce), 403);
        Assert.Equal("/a/[redacted]", ev.Path);
        Assert.Contains(ev.Findings, f => f.Detector == "acme-token" && f.Location == "path");
    }

    [Fact]
    public void Finding_in_the_method_redacts_the_method()
    {
        var exchange = InTunnel(AcmeToken, "/", "");
        Assert.NotNull(new ContentStage(null).Run(exchange));
        Assert.Equal("[redacted]", AuditEventFactory.Request(exchange, Allowed, 403).Method);
    }

    [Fact]
    public void Control_characters_in_method_and_host_are_sanitised()
    {
        var exchange = new ProxyExchange(Enforce, null, new ProxyConnectionFeature(Remote), 0);
        exchange.View = new RequestView("GE\u001b[2JT", new RequestTarget("http", "evil\u001b[31m.example", 80, "/", ""), [], null);
        var ev = AuditEventFactory.Request(exchange, Allowed, 200);
        Assert.Equal("GE\\x1b[2JT", ev.Method);
        Assert.Equal("evil\\x1b[31m.example", ev.Host);
    }

    [Fact]
    public void Host_carrying_a_credential_keeps_only_its_last_two_labels()
    {
        var exchange = new ProxyExchange(Enforce, null, new ProxyConnectionFeature(Remote), 0);
        exchange.View = new RequestView("GET", new RequestTarget("http", AcmeToken + ".leak.example.net", 80, "/", ""), [], null);
        Assert.NotNull(ContentChecks.ScanHost(exchange.Snapshot, exchange.View.Target.Host)); // the target stage's check
        exchange.HostCarriesCredential = true;
        var ev = AuditEventFactory.Request(exchange, Allowed, 403);
        Assert.Equal("[redacted].example.net", ev.Host);
    }

    [Fact]
    public void Request_without_a_view_records_the_tunnel_target_and_the_sanitised_method()
    {
        var context = Context("GE\u001bT", "*", Tunnel());
        var exchange = Exchange(Enforce, context);
        var ev = AuditEventFactory.Request(exchange, Decision.Enforce("protocol", Reasons.BadRequest), 400);
        Assert.Equal("GE\\x1bT", ev.Method);
        Assert.Equal(BoundHost, ev.Host);
        Assert.Equal(443, ev.Port);
        Assert.Equal("https", ev.Scheme);
        Assert.Null(ev.Path);
        Assert.Equal("bad-request", ev.Reason);
    }

    [Fact]
    public void Plain_request_without_a_view_is_recorded_as_http()
    {
        var exchange = Exchange(Enforce, Context("GET", "/x", null));
        var ev = AuditEventFactory.Request(exchange, Decision.Enforce("protocol", Reasons.NotAProxyRequest), 400);
        Assert.Equal("http", ev.Scheme);
        Assert.Equal(string.Empty, ev.Host);
        Assert.Null(ev.Path);
    }

    [Fact]
    public void Connect_event_sanitises_and_redacts_the_named_host()
    {
        var decision = Decision.Enforce("protocol", Reasons.MalformedConnect);
        var ev = AuditEventFactory.Connect(Enforce, IPAddress.Loopback, null, "a\u001b.evil.example", 443, decision, 400, 0);
        Assert.Equal(AuditKinds.Connect, ev.Kind);
        Assert.Equal("CONNECT", ev.Method);
        Assert.Equal("a\\x1b.evil.example", ev.Host);
        Assert.Equal("127.0.0.1", ev.ClientAddress);
        Assert.Equal(0, ev.DurationMs);
        Assert.Equal("malformed-connect", ev.Reason);

        var secretHost = AuditEventFactory.Connect(Enforce, null, null, ApiPlaceholder + ".example.com", 443, decision, 400, 0);
        Assert.Equal("[redacted].example.com", secretHost.Host);
        var flagged = AuditEventFactory.Connect(Enforce, null, null, "x.leak.example.org", 443, decision, 403, 0, hostCarriesCredential: true);
        Assert.Equal("[redacted].example.org", flagged.Host);
    }

    [Fact]
    public void Tunnel_event_uses_the_tunnel_target()
    {
        var feature = new ProxyConnectionFeature(Remote, Tunnel(clientId: "agent-1"));
        var ev = AuditEventFactory.Tunnel(Enforce, feature, feature.Tunnel!, Allowed, null, 0);
        Assert.Equal(AuditKinds.Tunnel, ev.Kind);
        Assert.Equal("agent-1", ev.Client);
        Assert.Equal(BoundHost, ev.Host);
        Assert.Equal(443, ev.Port);
    }

    private static void AssertNoSecret(AuditEvent ev)
    {
        foreach (var field in new[] { ev.Method, ev.Host, ev.Path, ev.Rule, ev.Reason, ev.Client })
        {
            Assert.DoesNotContain(ApiReal, field ?? string.Empty, StringComparison.Ordinal);
            Assert.DoesNotContain(ApiPlaceholder, field ?? string.Empty, StringComparison.Ordinal);
        }
    }
}
