using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary><c>mode: audit</c> forwards what enforce would deny and records it as <c>audit-deny</c>.</summary>
[Collection("proxy")]
public sealed class PolicyAuditModeTests : IClassFixture<PolicyOrigin>
{
    private const string Rules = """
        rules:
          - name: no-private
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            paths: ["/echo/private/**"]
            action: deny
          - name: read-only
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            methods: [GET]
            action: allow
        """;

    private readonly PolicyOrigin _o;

    public PolicyAuditModeTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task Audit_mode_records_the_would_be_deny_when_the_upstream_fails_and_502_is_worded_as_an_upstream_failure()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, "mode: audit\n" + Rules);

        // No rule allows POST to this host; the name does not resolve: the event still records the policy's verdict.
        var post = await CurlAsync(proxy, "POST", "http://nonexistent.invalid/aud-dns", data: "payload");
        Assert.True(post.Status == 502, post.ToString());
        Assert.Equal("error", post.Header("X-ProxyGuard-Decision"));
        Assert.Equal("dns-failure", post.Header("X-ProxyGuard-Reason"));
        Assert.Contains("not a policy decision", post.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("blocked this request", post.Body, StringComparison.Ordinal);
        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request" && ev.GetProperty("host").GetString() == "nonexistent.invalid");
        Assert.Equal("audit-deny", e.GetProperty("decision").GetString());
        Assert.Equal("default", e.GetProperty("rule").GetString());
        Assert.Equal("no-rule-matched", e.GetProperty("reason").GetString());
        Assert.Equal(502, e.GetProperty("status").GetInt32());
        Assert.False(e.TryGetProperty("secretsInjected", out var injected) && injected.GetArrayLength() > 0);
    }

    [Fact]
    public async Task Audit_mode_forwards_would_be_denials_and_records_audit_deny_events()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, "mode: audit\n" + Rules);

        // Allowed anyway: an allowed request is recorded as allow.
        var read = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/public/au1"));
        Assert.True(read.Status == 200, read.ToString());

        // A POST no rule allows (default deny), over https and plain http: forwarded.
        foreach (var (url, marker) in new[] { (_o.HttpsUrl("/echo/public/au2"), "au2"), (_o.HttpUrl("/echo/public/au3"), "au3") })
        {
            var post = await CurlAsync(proxy, "POST", url, data: "payload");
            Assert.True(post.Status == 200, post.ToString());
            Assert.Null(post.Header("X-ProxyGuard-Decision"));
            Assert.Contains("\"body\":\"payload\"", post.Body, StringComparison.Ordinal);
            Assert.True(_o.OriginSaw(marker));
        }

        // A deny rule: forwarded too.
        var denyRule = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/private/au4"));
        Assert.True(denyRule.Status == 200, denyRule.ToString());
        Assert.True(_o.OriginSaw("au4"));

        // A CONNECT no rule allows (127.0.0.1 is not listed): the tunnel opens, and the request inside is forwarded.
        var ip = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/public/au5", "127.0.0.1"));
        Assert.True(ip.Status == 200, ip.ToString());
        Assert.True(_o.OriginSaw("au5"));

        var allowed = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/public/au1");
        Assert.Equal("allow", allowed.GetProperty("decision").GetString());
        Assert.Equal("read-only", allowed.GetProperty("rule").GetString());

        foreach (var path in new[] { "/echo/public/au2", "/echo/public/au3" })
        {
            var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString() == path);
            Assert.Equal("audit-deny", e.GetProperty("decision").GetString());
            Assert.Equal("default", e.GetProperty("rule").GetString());
            Assert.Equal("no-rule-matched", e.GetProperty("reason").GetString());
            Assert.Equal(200, e.GetProperty("status").GetInt32());
        }

        var ruleDeny = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/private/au4");
        Assert.Equal("audit-deny", ruleDeny.GetProperty("decision").GetString());
        Assert.Equal("no-private", ruleDeny.GetProperty("rule").GetString());
        Assert.Equal("rule-deny", ruleDeny.GetProperty("reason").GetString());

        var connect = await proxy.WaitForEventAsync(e => e.GetProperty("kind").GetString() == "connect" && e.GetProperty("host").GetString() == "127.0.0.1");
        Assert.Equal("audit-deny", connect.GetProperty("decision").GetString());
        Assert.Equal("default", connect.GetProperty("rule").GetString());

        // The admin API filters them.
        var auditDenies = await proxy.EventsAsync("&decision=audit-deny");
        Assert.True(auditDenies.Count >= 4, $"{auditDenies.Count} audit-deny events");
        Assert.All(auditDenies, e => Assert.Equal("audit-deny", e.GetProperty("decision").GetString()));

        // Contrast: the same policy in enforce mode denies the same requests.
        await File.WriteAllTextAsync(proxy.PolicyPath, _o.Policy("mode: enforce\n" + Rules));
        using var admin = proxy.AdminClient();
        using var reload = await admin.PostAsync("api/policy/reload", null);
        Assert.Equal(HttpStatusCode.OK, reload.StatusCode);
        var enforced = await CurlAsync(proxy, "POST", _o.HttpsUrl("/echo/public/au6"), data: "payload");
        Assert.True(enforced.Status == 403, enforced.ToString());
        Assert.False(_o.OriginSaw("au6"));
        var enforcedRule = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/private/au7"));
        Assert.True(enforcedRule.Status == 403, enforcedRule.ToString());
        Assert.Equal("no-private", enforcedRule.Header("X-ProxyGuard-Rule"));
    }
}
