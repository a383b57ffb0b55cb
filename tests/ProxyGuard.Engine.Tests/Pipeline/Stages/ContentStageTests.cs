using System.Text;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using ProxyGuard.Policy.Decisions;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;
using static ProxyGuard.Engine.Tests.Support.TestSnapshots;

namespace ProxyGuard.Engine.Tests.Pipeline.Stages;

public sealed class ContentStageTests
{
    private static ProxyExchange Https(string method = "POST", string path = "/v1", string query = "",
        KeyValuePair<string, string>[]? headers = null, byte[]? body = null, Runtime.ProxySnapshot? snapshot = null) =>
        WithView(snapshot ?? Enforce, method, "https", BoundHost, 443, path, query, headers, body);

    private static void AssertFinding(ProxyExchange exchange, string location, string action = "deny")
    {
        var finding = Assert.Single(exchange.Findings);
        Assert.Contains(finding.Detector, new[] { "acme-token", "redact-token" });
        Assert.Equal(location, finding.Location);
        Assert.Equal(action, finding.Action);
    }

    private static void AssertDenied(ProxyExchange exchange, string location)
    {
        var denial = new ContentStage(null).Run(exchange);
        Assert.NotNull(denial);
        Assert.Equal("content-finding", denial.Reason);
        Assert.Equal("acme-token", denial.Rule);
        Assert.Equal(403, denial.Status);
        Assert.DoesNotContain(AcmeToken, denial.Message, StringComparison.Ordinal);
        AssertFinding(exchange, location);
    }

    [Fact]
    public void Clean_request_passes_without_findings()
    {
        var exchange = Https(headers: [H("Accept", "application/json")], query: "a=1", body: "hello"u8.ToArray());
        Assert.Null(new ContentStage(null).Run(exchange));
        Assert.Empty(exchange.Findings);
        Assert.Empty(exchange.Outgoing.ChangedHeaders);
        Assert.Null(exchange.Outgoing.Body);
    }

    [Fact]
    public void Credential_in_a_header_value_is_refused() => AssertDenied(Https(headers: [H("X-Token", AcmeToken)]), "header");

    [Fact]
    public void Credential_in_a_header_name_is_refused() => AssertDenied(Https(headers: [H(AcmeToken, "v")]), "header");

    [Fact]
    public void Credential_in_the_path_is_refused() => AssertDenied(Https(path: "/v1/" + AcmeToken), "path");

    [Fact]
    public void Credential_in_the_method_is_refused() => AssertDenied(Https(method: AcmeToken), "method");

    [Fact]
    public void Credential_in_the_query_is_refused() => AssertDenied(Https(query: "k=" + AcmeToken), "query");

    [Fact]
    public void Credential_in_the_body_is_refused() =>
        AssertDenied(Https(headers: [H("Content-Type", "text/plain")], body: Encoding.UTF8.GetBytes("x " + AcmeToken + " y")), "body");

    [Fact]
    public void A_plain_http_host_is_scanned_before_the_rules_not_here()
    {
        // The target stage scans a plain request's host (as the CONNECT layer does), before the rules decide.
        var exchange = WithView(Enforce, "GET", "http", AcmeToken + ".plain.example.net", 80, "/");
        Assert.Null(new ContentStage(null).Run(exchange));
        var denial = ContentChecks.ScanHost(exchange.Snapshot, AcmeToken + ".plain.example.net");
        Assert.Equal("content-finding", denial?.Reason);
    }

    [Fact]
    public void Proxy_authorization_is_not_scanned() =>
        Assert.Null(new ContentStage(null).Run(Https(headers: [H("Proxy-Authorization", "Basic " + AcmeToken)])));

    [Fact]
    public void Scan_sections_off_skip_headers_query_and_body_but_not_the_path()
    {
        var off = Build(PolicyYaml(scan: "[]"));
        var exchange = Https(headers: [H("X-Token", AcmeToken)], query: "k=" + AcmeToken, body: Encoding.UTF8.GetBytes(AcmeToken), snapshot: off);
        Assert.Null(new ContentStage(null).Run(exchange));
        Assert.Empty(exchange.Findings);
        AssertDenied(Https(path: "/" + AcmeToken, snapshot: off), "path");
    }

    [Fact]
    public void Redact_rewrites_the_outgoing_header_only()
    {
        var exchange = Https(headers: [H("X-Note", "a " + RedactToken), H("X-Note", "clean")]);
        Assert.Null(new ContentStage(null).Run(exchange));
        var values = exchange.Outgoing.ChangedHeaders["X-Note"];
        Assert.Equal(2, values.Length);
        Assert.DoesNotContain(RedactToken, values[0], StringComparison.Ordinal);
        Assert.Contains("[REDACTED", values[0], StringComparison.Ordinal);
        Assert.Equal("clean", values[1]);
        Assert.Equal("a " + RedactToken, exchange.View.Header("X-Note")); // the view keeps what was sent
        AssertFinding(exchange, "header", "redact");
    }

    [Fact]
    public void Redact_rewrites_the_outgoing_query()
    {
        var exchange = Https(query: "a=1&k=" + RedactToken);
        Assert.Null(new ContentStage(null).Run(exchange));
        Assert.DoesNotContain(RedactToken, exchange.Outgoing.RawQuery, StringComparison.Ordinal);
        Assert.StartsWith("a=1&k=", exchange.Outgoing.RawQuery, StringComparison.Ordinal);
        Assert.Equal("a=1&k=" + RedactToken, exchange.View.Target.RawQuery);
        AssertFinding(exchange, "query", "redact");
    }

    [Fact]
    public void Redact_rewrites_the_outgoing_body()
    {
        var sent = Encoding.UTF8.GetBytes("note " + RedactToken + " end");
        var exchange = Https(headers: [H("Content-Type", "text/plain")], body: sent);
        Assert.Null(new ContentStage(null).Run(exchange));
        var outgoing = Encoding.UTF8.GetString(exchange.Outgoing.Body!.Value.Span);
        Assert.DoesNotContain(RedactToken, outgoing, StringComparison.Ordinal);
        Assert.StartsWith("note ", outgoing, StringComparison.Ordinal);
        Assert.Equal(sent, exchange.View.Body!.Value.ToArray());
        AssertFinding(exchange, "body", "redact");
    }

    [Fact]
    public void Audit_mode_forwards_a_finding_and_remembers_it()
    {
        var exchange = Https(headers: [H("X-Token", AcmeToken)], snapshot: AuditMode);
        Assert.Null(new ContentStage(null).Run(exchange));
        Assert.Equal(Verdict.AuditDeny, exchange.AuditDeny!.Verdict);
        Assert.Equal("content-finding", exchange.AuditDeny.Reason.Name);
        AssertFinding(exchange, "header");
    }

    [Fact]
    public void Real_secret_value_is_a_vault_secret_finding_when_builtin_detectors_run()
    {
        // The snapshot gives the scanner every resolved secret value; the vault-secret detector is a built-in one.
        var withBuiltins = Build(PolicyYaml().Replace("builtin: none", "builtin: [vault-secret]", StringComparison.Ordinal));
        var exchange = Https(headers: [H("X-Token", ApiReal)], snapshot: withBuiltins);
        var denial = new ContentStage(null).Run(exchange);
        Assert.NotNull(denial);
        Assert.Equal("vault-secret", denial.Rule);
        Assert.Contains(exchange.Findings, f => f.Detector == "vault-secret" && f.Location == "header");
        Assert.DoesNotContain(ApiReal, denial.Message, StringComparison.Ordinal);

        // builtin: none turns it off (the secret gate still refuses the real value).
        Assert.Null(new ContentStage(null).Run(Https(headers: [H("X-Token", ApiReal)])));
    }

    [Fact]
    public void Vault_secret_detector_finds_a_gratuitously_percent_encoded_real_value_in_the_path()
    {
        var withBuiltins = Build(PolicyYaml().Replace("builtin: none", "builtin: [vault-secret]", StringComparison.Ordinal));
        var exchange = Https(path: "/x/%52" + ApiReal[1..], snapshot: withBuiltins);
        Assert.Equal("vault-secret", new ContentStage(null).Run(exchange)?.Rule);
    }
}
