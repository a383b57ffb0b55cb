using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;
using ProxyGuard.FunctionalTests.Reliability;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// Issue 19: an event records what happened. A request carrying a placeholder that the policy allows, whose upstream
/// fails before a byte is sent (the name does not resolve, the port refuses, the certificate is not trusted), is
/// answered as an upstream failure (not a policy block) and its event names no injected secret: none left the proxy.
/// </summary>
[Collection("proxy")]
public sealed class UpstreamFailureEventTests : IClassFixture<PolicyOrigin>
{
    private const string SecretValue = "synthetic-upfail-secret-value-0123456789";

    private readonly PolicyOrigin _o;

    public UpstreamFailureEventTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task A_request_that_never_left_records_no_injected_secret_and_is_worded_as_an_upstream_failure()
    {
        using var untrustedPki = new TestPki("Untrusted Origin CA");
        await using var untrusted = await TestOrigin.StartAsync(untrustedPki.Issue(["localhost", "127.0.0.1"]));
        var closed = FaultOrigin.ClosedPort();
        using var dir = new TempDir();
        var ports = string.Join(", ", new[] { 443, untrusted.HttpsPort, closed }.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        await using var proxy = await _o.StartProxyAsync(dir, $$"""
            rules:
              - name: upstreams
                hosts: [localhost, nonexistent.invalid]
                ports: [{HTTPS}, {{ports}}]
                action: allow
            secrets:
              - name: upfail
                value: env:PG_UPFAIL_SECRET
                sandbox_env: UPFAIL_TOKEN
                hosts: [localhost, nonexistent.invalid]
                in: [headers]
            """, new Dictionary<string, string> { ["PG_UPFAIL_SECRET"] = SecretValue });
        var placeholder = (await proxy.EnvAsync())["UPFAIL_TOKEN"];
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);

        async Task<(HttpResponseMessage Response, string Body)> SendAsync(string url)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", placeholder);
            var response = await client.SendAsync(request);
            return (response, await response.Content.ReadAsStringAsync());
        }

        // Control: toward a healthy upstream the secret is substituted and the event says so.
        var (ok, okBody) = await SendAsync(_o.HttpsUrl("/echo/upfail/ok"));
        using (ok)
        {
            Assert.True(ok.StatusCode == HttpStatusCode.OK, okBody);
        }

        var sent = await proxy.WaitForEventAsync(e => Path(e) == "/echo/upfail/ok");
        Assert.Equal(["upfail"], Injected(sent));

        foreach (var (url, reason) in new[]
                 {
                     ("https://nonexistent.invalid/upfail/dns", "dns-failure"),
                     ($"https://localhost:{closed}/upfail/connect", "upstream-connect"),
                     ($"https://localhost:{untrusted.HttpsPort}/upfail/tls", "upstream-tls"),
                 })
        {
            var (response, body) = await SendAsync(url);
            using (response)
            {
                Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"{url}: {(int)response.StatusCode} {body}");
                Assert.Equal("error", Header(response, "X-ProxyGuard-Decision"));
                Assert.Equal(reason, Header(response, "X-ProxyGuard-Reason"));
                Assert.Contains("not a policy decision", body, StringComparison.Ordinal);
                Assert.DoesNotContain("blocked", body, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain(SecretValue, body, StringComparison.Ordinal);
            }

            var path = new Uri(url).AbsolutePath;
            var e = await proxy.WaitForEventAsync(ev => Path(ev) == path);
            Assert.Equal("allow", e.GetProperty("decision").GetString());
            Assert.Equal("upstreams", e.GetProperty("rule").GetString());
            Assert.Equal(reason, e.GetProperty("reason").GetString());
            Assert.Equal(502, e.GetProperty("status").GetInt32());
            Assert.True(Injected(e).Length == 0, $"{url}: the event records secretsInjected [{string.Join(", ", Injected(e))}] for a request that never left");
        }

        Assert.Empty(untrusted.Received);
    }

    private static string? Path(JsonElement e) =>
        e.TryGetProperty("path", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;

    private static string[] Injected(JsonElement e) =>
        e.TryGetProperty("secretsInjected", out var names) && names.ValueKind == JsonValueKind.Array
            ? names.EnumerateArray().Select(n => n.GetString() ?? string.Empty).ToArray()
            : [];

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.First() : null;
}
