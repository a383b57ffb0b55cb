using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Issue 20 class 2: cached leaf certificates are re-minted before they expire, also for a host that is hit
/// constantly (fake clock); the CA's own expiry is surfaced in /healthz, a metric and the log.
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CertificateLifetimeTests
{
    private sealed class FakeClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void A_busy_host_gets_a_fresh_leaf_before_the_cached_one_expires()
    {
        using var dir = new TempDir();
        using var ca = CertificateAuthority.LoadOrCreate(Path.Combine(dir.Path, "ca"), out _);
        var clock = new FakeClock(DateTimeOffset.UtcNow);
        using var cache = new LeafCertificateCache(ca, capacity: 16, time: clock);

        var first = cache.Get("busy.example").TargetCertificate;
        var firstNotAfter = new DateTimeOffset(first.NotAfter.ToUniversalTime());
        Assert.InRange(firstNotAfter, clock.Now.AddDays(29), clock.Now.AddDays(31));

        // A hit every day for 40 days (past the first leaf's expiry): every leaf served is valid at that moment,
        // with at least a quarter of the lifetime left.
        var distinct = new HashSet<string>(StringComparer.Ordinal);
        for (var day = 0; day <= 40; day++)
        {
            clock.Now = clock.Now.AddDays(day == 0 ? 0 : 1);
            var leaf = cache.Get("busy.example").TargetCertificate;
            distinct.Add(leaf.Thumbprint);
            var notAfter = new DateTimeOffset(leaf.NotAfter.ToUniversalTime());
            Assert.True(notAfter - clock.Now > TimeSpan.FromDays(7), $"day {day}: leaf expires at {notAfter:O}");
            Assert.True(new DateTimeOffset(leaf.NotBefore.ToUniversalTime()) <= clock.Now, $"day {day}: leaf not yet valid");
        }

        Assert.True(distinct.Count >= 2, "the leaf was never re-minted");
        Assert.Equal(distinct.Count, (int)cache.Minted);
        Assert.True(cache.Renewed >= 1);

        // Re-minted at most once per renewal window: about every 20 days, not on every hit.
        Assert.InRange(distinct.Count, 2, 3);
    }

    [Fact]
    public void A_leaf_capped_at_the_ca_expiry_is_not_re_minted_on_every_hit()
    {
        using var dir = new TempDir();
        var caDir = Path.Combine(dir.Path, "ca");
        var notAfter = DateTimeOffset.UtcNow.AddDays(5);
        WriteCa(caDir, DateTimeOffset.UtcNow.AddDays(-100), notAfter);
        using var ca = CertificateAuthority.Load(caDir);
        var clock = new FakeClock(DateTimeOffset.UtcNow);
        using var cache = new LeafCertificateCache(ca, capacity: 16, time: clock);
        for (var i = 0; i < 10; i++)
        {
            clock.Now = clock.Now.AddDays(1);
            cache.Get("capped.example");
        }

        Assert.Equal(1, cache.Minted);
        Assert.Equal(CaExpiryState.Expired, cache.CaStatus.State);
    }

    [Fact]
    public async Task Expired_ca_makes_healthz_503_and_shows_in_the_metric_and_the_log()
    {
        using var dir = new TempDir();
        var notAfter = TruncateSeconds(DateTimeOffset.UtcNow.AddDays(-2));
        WriteCa(Path.Combine(dir.Path, "ca"), DateTimeOffset.UtcNow.AddDays(-400), notAfter);
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, "version: 1\ndefault: deny\nrules: []\n");
        using var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") };

        using var health = await anonymous.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Equal("ca-expired", (await health.Content.ReadAsStringAsync()).Trim());
        Assert.Equal(notAfter.ToUnixTimeSeconds(), await CaMetricAsync(anonymous));
        Assert.Contains(proxy.Output.Split('\n'), l => l.Contains("the interception CA", StringComparison.Ordinal) && l.Contains("expired at", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Ca_expiring_within_30_days_warns_in_healthz_and_the_log_and_limit_beyond_int_is_clamped()
    {
        using var dir = new TempDir();
        var notAfter = TruncateSeconds(DateTimeOffset.UtcNow.AddDays(10).AddHours(1));
        WriteCa(Path.Combine(dir.Path, "ca"), DateTimeOffset.UtcNow.AddDays(-400), notAfter);
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, "version: 1\ndefault: deny\nrules: []\n");
        using var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") };

        using var health = await anonymous.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("ok\nwarning: ca-expires-soon (10 days)\n", await health.Content.ReadAsStringAsync());
        Assert.Equal(notAfter.ToUnixTimeSeconds(), await CaMetricAsync(anonymous));
        Assert.Contains(proxy.Output.Split('\n'), l => l.Contains("the interception CA", StringComparison.Ordinal) && l.Contains("(in 10 days)", StringComparison.Ordinal));

        // Issue 20 class 9: a limit beyond 2^31-1 (or 2^63-1) is clamped to the page maximum, as documented; a malformed one is 400.
        using var admin = proxy.AdminClient();
        foreach (var limit in new[] { "2147483648", "9223372036854775808", "99999999999999999999999999", "1000", "0" })
        {
            using var page = await admin.GetAsync("api/events?limit=" + limit);
            Assert.True(page.StatusCode == HttpStatusCode.OK, $"limit={limit}: {page.StatusCode}");
        }

        foreach (var limit in new[] { "-1", "+5", "1e3", " 5", "" })
        {
            using var page = await admin.GetAsync("api/events?limit=" + Uri.EscapeDataString(limit));
            Assert.True(page.StatusCode == HttpStatusCode.BadRequest, $"limit='{limit}': {page.StatusCode}");
        }
    }

    private static async Task<long> CaMetricAsync(HttpClient anonymous)
    {
        var text = await anonymous.GetStringAsync("metrics");
        var line = Assert.Single(text.Split('\n'), l => l.StartsWith("proxyguard_ca_not_after_seconds ", StringComparison.Ordinal));
        return (long)double.Parse(line["proxyguard_ca_not_after_seconds ".Length..], CultureInfo.InvariantCulture);
    }

    /// <summary>A CA with the given validity, written as the proxy expects it (directory 0700, key 0600).</summary>
    internal static void WriteCa(string directory, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Test Expiring CA, O=ProxyGuard", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var cert = request.CreateSelfSigned(TruncateSeconds(notBefore), TruncateSeconds(notAfter));
        File.WriteAllText(Path.Combine(directory, "ca.pem"), cert.ExportCertificatePem() + "\n");
        var keyPath = Path.Combine(directory, "ca-key.pem");
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private static DateTimeOffset TruncateSeconds(DateTimeOffset t) => new(t.Ticks - (t.Ticks % TimeSpan.TicksPerSecond), t.Offset);
}
