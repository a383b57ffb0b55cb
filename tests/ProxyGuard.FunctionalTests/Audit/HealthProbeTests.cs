using System.Net;
using ProxyGuard.FunctionalTests.Ecosystem;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// The orchestrator probes on the admin listener: <c>/livez</c> (the process answers) and <c>/readyz</c> (policy loaded,
/// CA usable, audit store writable, proxy listener serving), unauthenticated, beside the unchanged <c>/healthz</c>.
/// The audit-store case is in <see cref="StoreFailureTests"/> (it needs a store that fails at run time).
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class HealthProbeTests
{
    private const string Policy = "version: 1\ndefault: deny\nrules: []\n";

    [Fact]
    public async Task A_healthy_proxy_is_live_and_ready_without_a_token_and_a_rejected_reload_keeps_it_ready()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, Policy);
        using var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") };

        var (liveStatus, live) = await GetAsync(anonymous, "livez");
        Assert.Equal(HttpStatusCode.OK, liveStatus);
        Assert.Equal("ok\n", live);
        var (readyStatus, ready) = await GetAsync(anonymous, "readyz");
        Assert.Equal(HttpStatusCode.OK, readyStatus);
        Assert.Equal("ready\npolicy: ok\nca: ok\naudit: ok\nlistener: ok\n", ready);
        var (healthStatus, health) = await GetAsync(anonymous, "healthz");
        Assert.Equal(HttpStatusCode.OK, healthStatus);
        Assert.Equal("ok\n", health);

        // An invalid policy on disk keeps the last good one serving: the replica stays ready (a bad ConfigMap must not
        // take every replica out of the Service at once).
        await File.WriteAllTextAsync(proxy.PolicyPath, "version: 1\ndefault: maybe\n");
        using (var admin = proxy.AdminClient())
        using (var rejected = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal((HttpStatusCode)422, rejected.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await GetAsync(anonymous, "readyz")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(anonymous, "livez")).Status);
    }

    [Fact]
    public async Task An_expired_ca_makes_the_proxy_not_ready_but_still_live()
    {
        using var dir = new TempDir();
        CertificateLifetimeTests.WriteCa(Path.Combine(dir.Path, "ca"), DateTimeOffset.UtcNow.AddDays(-400), DateTimeOffset.UtcNow.AddDays(-2));
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, Policy);
        using var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") };

        var (readyStatus, ready) = await GetAsync(anonymous, "readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, readyStatus);
        Assert.Equal("not-ready\npolicy: ok\nca: ca-expired\naudit: ok\nlistener: ok\n", ready);
        var (liveStatus, live) = await GetAsync(anonymous, "livez");
        Assert.Equal(HttpStatusCode.OK, liveStatus);
        Assert.Equal("ok\n", live);
    }

    internal static async Task<(HttpStatusCode Status, string Body)> GetAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
