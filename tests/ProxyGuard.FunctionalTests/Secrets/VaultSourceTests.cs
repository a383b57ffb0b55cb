using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>A <c>vault:</c> secret (KV v2 over HTTP on loopback) substituted end to end, and a Vault outage failing closed.</summary>
[Collection("proxy")]
public sealed class VaultSourceTests : IClassFixture<VaultFixture>
{
    private readonly VaultFixture _f;

    public VaultSourceTests(VaultFixture fixture)
    {
        _f = fixture;
    }

    private async Task<(HttpResponseMessage Response, string Body, int OriginRequests)> SendBearerAsync(string token, string path = "/echo/vault")
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Env["PROXYGUARD_CA_CERT"]);
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl(path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.Add("X-Echo-Header", token);
        var before = _f.Origin.Received.Count;
        var response = await client.SendAsync(request);
        return (response, await response.Content.ReadAsStringAsync(), _f.Origin.Received.Count - before);
    }

    [Fact]
    public async Task Vault_kv2_secret_is_fetched_with_token_and_namespace_and_substituted()
    {
        _f.Vault.ForcedStatus = null;
        var (response, body, originRequests) = await SendBearerAsync(_f.Placeholder);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(1, originRequests);
        Assert.Equal("Bearer " + _f.TokenValue, _f.Origin.ReceivedHeaders.Last()["Authorization"]);
        Assert.Equal(_f.Placeholder, string.Join(",", response.Headers.GetValues("X-Echoed")));
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));

        var reads = _f.Vault.Requests.Where(r => r.Path == VaultFixture.SecretPath).ToList();
        Assert.NotEmpty(reads);
        Assert.All(reads, r =>
        {
            Assert.Equal("GET", r.Method);
            Assert.Equal(_f.VaultToken, r.Headers["X-Vault-Token"]);
            Assert.Equal(VaultFixture.Namespace, r.Headers["X-Vault-Namespace"]);
        });
    }

    [Fact]
    public async Task Vault_value_left_unused_past_ttl_and_grace_is_fetched_again_on_next_use()
    {
        _f.Vault.ForcedStatus = null;
        var warm = await SendBearerAsync(_f.Placeholder);
        Assert.True(warm.Response.StatusCode == HttpStatusCode.OK, warm.Body);
        var reads = _f.Vault.Requests.Count(r => r.Path == VaultFixture.SecretPath);

        // Nothing uses the secret for longer than TTL + grace: it expires although Vault is healthy.
        await Task.Delay(TimeSpan.FromSeconds(_f.CacheTtlSeconds + _f.StaleGraceSeconds + 1.5));
        var (response, body, originRequests) = await SendBearerAsync(_f.Placeholder);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(1, originRequests);
        Assert.Equal("Bearer " + _f.TokenValue, _f.Origin.ReceivedHeaders.Last()["Authorization"]);
        Assert.True(_f.Vault.Requests.Count(r => r.Path == VaultFixture.SecretPath) > reads);
    }

    [Fact]
    public async Task Secret_vault_does_not_have_fails_its_requests_closed_with_a_reason()
    {
        Assert.Contains("not found in vault (404)", _f.Proxy.Output, StringComparison.Ordinal);
        var (response, body, originRequests) = await SendBearerAsync(_f.Env["MISSING_TOKEN"]);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("secret-unavailable", SecretsFixture.Reason(response));
        Assert.Contains("missing", body, StringComparison.Ordinal);
        Assert.Equal(0, originRequests);
    }

    [Fact]
    public async Task Vault_outage_past_ttl_and_grace_fails_closed_then_recovers()
    {
        try
        {
            _f.Vault.ForcedStatus = null;
            var first = await SendBearerAsync(_f.Placeholder);
            Assert.True(first.Response.StatusCode == HttpStatusCode.OK, first.Body);

            _f.Vault.ForcedStatus = 503;
            var sw = Stopwatch.StartNew();
            (HttpResponseMessage Response, string Body, int OriginRequests) result;
            while (true)
            {
                result = await SendBearerAsync(_f.Placeholder);
                if (result.Response.StatusCode != HttpStatusCode.OK)
                {
                    break;
                }

                Assert.Equal("Bearer " + _f.TokenValue, _f.Origin.ReceivedHeaders.Last()["Authorization"]);
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), "the secret was still served 60 s into a vault outage");
                await Task.Delay(250);
            }

            Assert.Equal(HttpStatusCode.ServiceUnavailable, result.Response.StatusCode);
            Assert.Equal("secret-unavailable", SecretsFixture.Reason(result.Response));
            Assert.Equal(0, result.OriginRequests);
            Assert.Empty(SecretForms.FoundIn(result.Body, _f.RealValues));

            // Scrubbing keeps working with the last known value during the outage.
            using (var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Env["PROXYGUARD_CA_CERT"]))
            {
                var real = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/outage-real"));
                real.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.TokenValue);
                var before = _f.Origin.Received.Count;
                using var denied = await client.SendAsync(real);
                Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
                Assert.Equal("secret-real-value", SecretsFixture.Reason(denied));
                Assert.Equal(before, _f.Origin.Received.Count);
            }

            var ev = await _f.Proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "secret-unavailable");
            Assert.Equal("deny", ev.GetProperty("decision").GetString());

            // Vault answers again: requests succeed again (a background refresh runs at most every 5 s).
            _f.Vault.ForcedStatus = null;
            sw.Restart();
            while (true)
            {
                result = await SendBearerAsync(_f.Placeholder);
                if (result.Response.StatusCode == HttpStatusCode.OK)
                {
                    break;
                }

                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), "the secret did not recover within 60 s of vault answering again");
                await Task.Delay(500);
            }

            Assert.Equal("Bearer " + _f.TokenValue, _f.Origin.ReceivedHeaders.Last()["Authorization"]);
            Assert.Empty(SecretForms.FoundIn(_f.Proxy.Output, _f.RealValues));
        }
        finally
        {
            _f.Vault.ForcedStatus = null;
        }
    }
}
