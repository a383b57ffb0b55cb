using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>Client tokens (Proxy-Authorization Basic) select client-scoped rules; wrong or missing tokens get 407.</summary>
[Collection("proxy")]
public sealed class PolicyClientTests : IClassFixture<PolicyOrigin>
{
    // Synthetic test tokens, given to the proxy through its environment (env: references).
    private const string Agent1Token = "pg-test-agent1-3f9a0c2b";
    private const string Agent2Token = "pg-test-agent2-7d41e5aa";
    private const string RemoteToken = "pg-test-remote-0b8c6d13";

    private const string Body = """
        clients:
          - id: agent-1
            token: env:PG_TEST_AGENT1_TOKEN
            networks: [127.0.0.0/8]
          - id: agent-2
            token: env:PG_TEST_AGENT2_TOKEN
          - id: remote-only
            token: env:PG_TEST_REMOTE_TOKEN
            networks: [10.99.0.0/16]
        rules:
          - name: agent1-private
            clients: [agent-1]
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            paths: ["/echo/agent1/**"]
            action: allow
          - name: shared
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            paths: ["/echo/shared/**"]
            action: allow
        """;

    private static readonly Dictionary<string, string> Environment = new()
    {
        ["PG_TEST_AGENT1_TOKEN"] = Agent1Token,
        ["PG_TEST_AGENT2_TOKEN"] = Agent2Token,
        ["PG_TEST_REMOTE_TOKEN"] = RemoteToken,
    };

    private readonly PolicyOrigin _o;

    public PolicyClientTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task Client_tokens_select_client_scoped_rules()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Body, Environment);

        foreach (var scheme in new[] { "https", "http" })
        {
            string Url(string path) => scheme == "https" ? _o.HttpsUrl(path) : _o.HttpUrl(path);

            var own = await CurlAsync(proxy, "GET", Url($"/echo/agent1/{scheme}-c1"), "agent-1:" + Agent1Token);
            Assert.True(own.Status == 200, own.ToString());
            Assert.True(_o.OriginSaw($"{scheme}-c1"));

            // agent-2 authenticates, but the client-scoped rule is not for it.
            var other = await CurlAsync(proxy, "GET", Url($"/echo/agent1/{scheme}-c2"), "agent-2:" + Agent2Token);
            Assert.True(other.Status == 403, other.ToString());
            Assert.Equal("default", other.Header("X-ProxyGuard-Rule"));
            Assert.False(_o.OriginSaw($"{scheme}-c2"));

            var shared = await CurlAsync(proxy, "GET", Url($"/echo/shared/{scheme}-c3"), "agent-2:" + Agent2Token);
            Assert.True(shared.Status == 200, shared.ToString());
        }

        // The events name the authenticated client.
        var e1 = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/agent1/https-c1");
        Assert.Equal("agent-1", e1.GetProperty("client").GetString());
        Assert.Equal("agent1-private", e1.GetProperty("rule").GetString());
        var e2 = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/agent1/http-c2");
        Assert.Equal("agent-2", e2.GetProperty("client").GetString());
        Assert.Equal("deny", e2.GetProperty("decision").GetString());

        // .NET's HttpClient sends proxy credentials only after a 407 challenge: the challenge works.
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath, proxyCredentials: new NetworkCredential("agent-1", Agent1Token));
        using var viaChallenge = await client.GetAsync(_o.HttpsUrl("/echo/agent1/dotnet-c4"));
        Assert.Equal(HttpStatusCode.OK, viaChallenge.StatusCode);
        using var plainViaChallenge = await client.GetAsync(_o.HttpUrl("/echo/agent1/dotnet-c5"));
        Assert.Equal(HttpStatusCode.OK, plainViaChallenge.StatusCode);
    }

    [Fact]
    public async Task Missing_or_wrong_tokens_get_407_with_Proxy_Authenticate_on_connect_and_plain_requests()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Body, Environment);
        var https = $"localhost:{_o.Origin.HttpsPort}";
        var http = _o.HttpUrl("/echo/shared/a407");

        var credentials = new (string Name, string? Header)[]
        {
            ("missing", null),
            ("wrong token", Basic("agent-1", Agent2Token)),
            ("unknown client", Basic("agent-9", Agent1Token)),
            ("empty token", Basic("agent-1", string.Empty)),
            ("not basic", "Bearer " + Agent1Token),
            ("bad base64", "Basic !!!"),
            ("right token, wrong network", Basic("remote-only", RemoteToken)),
        };
        foreach (var (name, header) in credentials)
        {
            var auth = header is null ? string.Empty : $"Proxy-Authorization: {header}\r\n";
            var connect = await RawHeadAsync(proxy, $"CONNECT {https} HTTP/1.1\r\nHost: {https}\r\n{auth}\r\n");
            Assert.True(connect.StartsWith("HTTP/1.1 407 ", StringComparison.Ordinal), $"{name}, CONNECT: {connect}");
            Assert.Contains("Proxy-Authenticate: Basic realm=\"proxyguard\"\r\n", connect, StringComparison.Ordinal);

            var plain = await RawHeadAsync(proxy, $"GET {http} HTTP/1.1\r\nHost: localhost:{_o.Origin.HttpPort}\r\n{auth}\r\n");
            Assert.True(plain.StartsWith("HTTP/1.1 407 ", StringComparison.Ordinal), $"{name}, plain: {plain}");
            Assert.Contains("Proxy-Authenticate: Basic realm=\"proxyguard\"\r\n", plain, StringComparison.Ordinal);
        }

        Assert.False(_o.OriginSaw("a407"));

        // Positive controls over the same raw socket path: the right token passes on both.
        var ok = await RawHeadAsync(proxy, $"CONNECT {https} HTTP/1.1\r\nHost: {https}\r\nProxy-Authorization: {Basic("agent-1", Agent1Token)}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 ", ok, StringComparison.Ordinal);
        var okPlain = await RawHeadAsync(proxy,
            $"GET {http} HTTP/1.1\r\nHost: localhost:{_o.Origin.HttpPort}\r\nProxy-Authorization: {Basic("agent-2", Agent2Token)}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 ", okPlain, StringComparison.Ordinal);

        // curl with a wrong token sees the 407 too.
        var curl = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/shared/curl407"), "agent-1:wrong");
        Assert.True(curl.Status == 407, curl.ToString());
        var deny = await proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "auth-required");
        Assert.Equal("deny", deny.GetProperty("decision").GetString());
    }
}
