using System.Net;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>
/// Upstream and dependency faults through the running proxy: each ends in a defined client-visible result and an
/// event, never a hang, a crash, or an allowed request that should have been denied.
/// </summary>
[Collection("proxy")]
public sealed class FaultInjectionTests : IClassFixture<FaultFixture>
{
    private readonly FaultFixture _f;

    public FaultInjectionTests(FaultFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Upstream_refusing_the_connection_gives_502_and_an_event()
    {
        var (response, body) = await GetAsync($"http://127.0.0.1:{_f.ClosedPort}/refused");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("error", Header(response, "X-ProxyGuard-Decision"));
        Assert.StartsWith("upstream-", Header(response, "X-ProxyGuard-Reason"), StringComparison.Ordinal);
        Assert.Contains("ProxyGuard", body, StringComparison.Ordinal);
        var e = await EventForPortAsync(_f.ClosedPort);
        Assert.Equal(502, e.GetProperty("status").GetInt32());
        await AssertProxyHealthyAsync();
    }

    [Fact]
    public async Task Upstream_resetting_mid_request_gives_502_and_an_event()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var content = new ByteArrayContent(new byte[2 * 1024 * 1024]);
        using var response = await client.PostAsync($"http://127.0.0.1:{_f.ResetMidRequest.Port}/upload", content);
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("error", Header(response, "X-ProxyGuard-Decision"));
        Assert.True(_f.ResetMidRequest.Requests >= 1, "the origin never saw the request");
        var e = await EventForPortAsync(_f.ResetMidRequest.Port);
        Assert.Equal(502, e.GetProperty("status").GetInt32());
        await AssertProxyHealthyAsync();
    }

    [Fact]
    public async Task Upstream_resetting_mid_response_aborts_the_client_body_and_is_recorded()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var response = await client.GetAsync($"http://127.0.0.1:{_f.ResetMidResponse.Port}/big", HttpCompletionOption.ResponseHeadersRead);

        // The status line already went out: the defined result is a body that ends early with an error, never a
        // silently "complete" short body.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1_000_000, response.Content.Headers.ContentLength);
        var read = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
            await body.CopyToAsync(Stream.Null, cts.Token);
        });
        Assert.IsNotType<OperationCanceledException>(read);
        var e = await EventForPortAsync(_f.ResetMidResponse.Port);
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.StartsWith("upstream-", e.GetProperty("reason").GetString(), StringComparison.Ordinal);
        await AssertProxyHealthyAsync();
    }

    [Fact]
    public async Task Upstream_that_never_answers_leaves_the_client_a_defined_way_out_and_is_recorded()
    {
        // The proxy's upstream activity timeout is 2 minutes (504 then); a client that gives up first must get its
        // connection back promptly, the abandoned request is recorded, and the proxy keeps serving.
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        client.Timeout = TimeSpan.FromSeconds(4);
        var started = DateTime.UtcNow;
        await Assert.ThrowsAnyAsync<TaskCanceledException>(() => client.GetAsync($"http://127.0.0.1:{_f.Stall.Port}/stall"));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30));
        Assert.True(_f.Stall.Requests >= 1, "the origin never saw the request");
        var e = await EventForPortAsync(_f.Stall.Port, timeoutMs: 30_000);
        Assert.Equal("allow", e.GetProperty("decision").GetString());

        // Recorded as a failed exchange, not a policy decision: the client gave up (or the aborted upstream socket's
        // SocketException is seen first, see docs/reliability.md).
        Assert.Contains(e.GetProperty("reason").GetString(), new[] { "client-canceled", "upstream-connect", "upstream-error" });
        await AssertProxyHealthyAsync();
    }

    [Fact]
    public async Task Upstream_answering_with_malformed_HTTP_gives_502_and_an_event()
    {
        var (response, _) = await GetAsync($"http://127.0.0.1:{_f.Malformed.Port}/garbage");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("error", Header(response, "X-ProxyGuard-Decision"));
        var e = await EventForPortAsync(_f.Malformed.Port);
        Assert.Equal(502, e.GetProperty("status").GetInt32());
        await AssertProxyHealthyAsync();
    }

    [Theory]
    [InlineData("expired")]
    [InlineData("wrong-name")]
    public async Task Upstream_certificate_that_is_expired_or_for_another_name_gives_502_upstream_tls(string which)
    {
        var origin = which == "expired" ? _f.Expired : _f.WrongName;
        var (response, body) = await GetAsync($"https://localhost:{origin.Port}/secret-page");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream-tls", Header(response, "X-ProxyGuard-Reason"));
        Assert.DoesNotContain("ok", body.Split('\n')[0], StringComparison.Ordinal);
        Assert.Equal(0, origin.Requests);
        var e = await EventForPortAsync(origin.Port);
        Assert.Equal("upstream-tls", e.GetProperty("reason").GetString());
        Assert.Equal(502, e.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task A_name_that_does_not_resolve_gives_502_dns_failure_and_an_event()
    {
        var (plain, _) = await GetAsync("http://nonexistent.invalid/x");
        Assert.Equal(HttpStatusCode.BadGateway, plain.StatusCode);
        Assert.Equal("dns-failure", Header(plain, "X-ProxyGuard-Reason"));

        var (tls, _) = await GetAsync("https://nonexistent.invalid/x");
        Assert.Equal(HttpStatusCode.BadGateway, tls.StatusCode);
        Assert.Equal("dns-failure", Header(tls, "X-ProxyGuard-Reason"));

        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("host").GetString() == "nonexistent.invalid"
                                                        && ev.GetProperty("reason").GetString() == "dns-failure");
        Assert.Equal(502, e.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Vault_unreachable_makes_requests_carrying_its_placeholder_fail_503_and_nothing_reaches_the_origin()
    {
        Assert.StartsWith("PG", _f.VaultPlaceholder, StringComparison.OrdinalIgnoreCase);
        var before = _f.Healthy.Received.Count;
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        foreach (var url in new[] { $"http://127.0.0.1:{_f.Healthy.HttpPort}/echo/vault", $"https://127.0.0.1:{_f.Healthy.HttpsPort}/echo/vault" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.VaultPlaceholder);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("secret-unavailable", Header(response, "X-ProxyGuard-Reason"));
            Assert.DoesNotContain("synthetic-test-vault-token", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(before, _f.Healthy.Received.Count);
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("reason").GetString() == "secret-unavailable");
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal(503, e.GetProperty("status").GetInt32());

        // Requests without the placeholder are unaffected.
        await AssertProxyHealthyAsync();
    }

    private async Task<(HttpResponseMessage Response, string Body)> GetAsync(string url)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        client.Timeout = TimeSpan.FromSeconds(90);
        var response = await client.GetAsync(url);
        return (response, await response.Content.ReadAsStringAsync());
    }

    private Task<JsonElement> EventForPortAsync(int port, int timeoutMs = 15_000) =>
        _f.Proxy.WaitForEventAsync(e => e.GetProperty("port").GetInt32() == port && e.GetProperty("kind").GetString() == "request", timeoutMs);

    private async Task AssertProxyHealthyAsync()
    {
        Assert.False(_f.Proxy.HasExited, "the proxy exited:\n" + _f.Proxy.Output);
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var response = await client.GetAsync($"https://localhost:{_f.Healthy.HttpsPort}/echo/healthy");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : string.Empty;
}
