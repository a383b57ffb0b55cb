using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>Method, path and port rules decide real requests through a running proxy (https in tunnels and plain http).</summary>
[Collection("proxy")]
public sealed class PolicyEnforcementTests : IClassFixture<PolicyOrigin>
{
    private const string Rules = """
        rules:
          - name: deny-admin
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            paths: ["/echo/admin/**"]
            action: deny
          - name: read-echo
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            methods: [GET]
            paths: ["/echo/one/*", "/echo/deep/**"]
            action: allow
          - name: upload-https-only
            hosts: [localhost]
            ports: [{HTTPS}]
            methods: [POST]
            paths: ["/upload"]
            action: allow
        """;

    private readonly PolicyOrigin _o;

    public PolicyEnforcementTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task Method_path_and_port_rules_allow_and_deny_real_requests()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Rules);

        foreach (var scheme in new[] { "https", "http" })
        {
            string Url(string path) => scheme == "https" ? _o.HttpsUrl(path) : _o.HttpUrl(path);

            // `*` is one segment; `**` is any depth.
            var one = await CurlAsync(proxy, "GET", Url($"/echo/one/{scheme}-m1"));
            Assert.True(one.Status == 200, one.ToString());
            Assert.Contains($"/echo/one/{scheme}-m1", one.Body, StringComparison.Ordinal);
            Assert.True(_o.OriginSaw($"/echo/one/{scheme}-m1"));

            var twoSegments = await CurlAsync(proxy, "GET", Url($"/echo/one/a/{scheme}-m2"));
            AssertDenied(twoSegments, "default", $"{scheme}-m2");

            var deep = await CurlAsync(proxy, "GET", Url($"/echo/deep/a/b/c/{scheme}-m3"));
            Assert.True(deep.Status == 200, deep.ToString());

            var deepApex = await CurlAsync(proxy, "GET", Url("/echo/deep"));
            Assert.True(deepApex.Status == 200, deepApex.ToString());

            // The method is not allowed by read-echo; nothing else matches.
            var post = await CurlAsync(proxy, "POST", Url($"/echo/one/{scheme}-m4"), data: "x");
            AssertDenied(post, "default", $"{scheme}-m4");

            // An explicit deny rule before the allow wins (first match).
            var admin = await CurlAsync(proxy, "GET", Url($"/echo/admin/{scheme}-m5"));
            AssertDenied(admin, "deny-admin", $"{scheme}-m5");
            Assert.Equal("rule-deny", admin.Header("X-ProxyGuard-Reason"));
        }

        // Port rule: /upload is allowed on the https port only.
        var httpsUpload = await CurlAsync(proxy, "POST", _o.HttpsUrl("/upload?m=u1"), data: "hello");
        Assert.True(httpsUpload.Status == 200, httpsUpload.ToString());
        Assert.StartsWith("5 ", httpsUpload.Body, StringComparison.Ordinal);
        var httpUpload = await CurlAsync(proxy, "POST", _o.HttpUrl("/upload?m=u2"), data: "hello");
        AssertDenied(httpUpload, "default", "m=u2");

        // A port no rule lists is refused at CONNECT, before TLS.
        var otherPort = _o.Origin.HttpsPort == 65535 ? 65534 : _o.Origin.HttpsPort + 1;
        var connect = await RawHeadAsync(proxy, $"CONNECT localhost:{otherPort} HTTP/1.1\r\nHost: localhost:{otherPort}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 403 ", connect, StringComparison.Ordinal);
        Assert.Contains("X-ProxyGuard-Rule: default\r\n", connect, StringComparison.Ordinal);

        // Every decision is an event with its rule.
        var denied = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/admin/https-m5");
        Assert.Equal("deny", denied.GetProperty("decision").GetString());
        Assert.Equal("deny-admin", denied.GetProperty("rule").GetString());
        var allowed = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/one/http-m1");
        Assert.Equal("allow", allowed.GetProperty("decision").GetString());
        Assert.Equal("read-echo", allowed.GetProperty("rule").GetString());
    }

    [Fact]
    public async Task Ambiguous_paths_never_match_an_allow_path_rule()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Rules);

        // The unambiguous spelling is allowed: the rule does match these places.
        var control = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/deep/a/b/control"));
        Assert.True(control.Status == 200, control.ToString());

        string[] ambiguous =
        [
            "/echo/deep/a%2Fb/amb1", "/echo/deep/a%2fb/amb2", "/echo/deep/%2e%2e/admin/amb3", "/echo/deep/x/%2E%2E/amb4",
            "/echo/deep/a%252Fb/amb5", "/echo/deep/a%5Cb/amb6", "/echo/deep//amb7", "/echo/deep/a%00b/amb8",
            "/echo/deep/a%25%32%46b/amb9", "/echo/deep/..%2Fadmin/amb10",
        ];
        foreach (var path in ambiguous)
        {
            // Through a tunnel and as a plain request; never forwarded.
            foreach (var (url, marker) in new[] { (_o.HttpsUrl(path + "-s"), path + "-s"), (_o.HttpUrl(path + "-p"), path + "-p") })
            {
                var result = await CurlAsync(proxy, "GET", url);
                var lastSegment = marker[marker.LastIndexOf('/')..];
                Assert.False(_o.OriginSaw(lastSegment), $"{url} reached the origin: {result}");
                if ((result.Status == 400 && result.Header("X-ProxyGuard-Decision") is null) || (result.Status == 0 && result.ExitCode != 0))
                {
                    // Kestrel's own request-target validation refused it first (an encoded NUL: 400 on
                    // HTTP/1.1, a stream reset on HTTP/2); it did not reach the origin (checked above).
                    continue;
                }

                Assert.True(result.Status == (int)HttpStatusCode.Forbidden, $"{url}: {result}");
                Assert.Equal("deny", result.Header("X-ProxyGuard-Decision"));
                Assert.True(result.Header("X-ProxyGuard-Rule") is "default" or "deny-admin", $"{url}: {result}");
            }
        }
    }

    private void AssertDenied(CurlResult result, string rule, string marker)
    {
        Assert.True(result.Status == (int)HttpStatusCode.Forbidden, result.ToString());
        Assert.Equal("deny", result.Header("X-ProxyGuard-Decision"));
        Assert.Equal(rule, result.Header("X-ProxyGuard-Rule"));
        Assert.Contains("ProxyGuard blocked", result.Body, StringComparison.Ordinal);
        Assert.False(_o.OriginSaw(marker), $"the origin received a denied request ({marker})");
    }
}
