using System.Globalization;
using System.Net;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>
/// The leaf-certificate cache under many distinct names (issue 16, "Names"): with a bound of 50 and 200 names, the cache
/// never holds more than 50 leaves, every name is served, and names evicted early are minted again and still work.
/// </summary>
[Collection("proxy")]
public sealed class CertificateCacheTests
{
    private const int Bound = 50;
    private const int Names = 200;

    private static string Name(int i) => "n" + i.ToString(CultureInfo.InvariantCulture) + ".names.test";

    [Fact]
    public async Task The_leaf_cache_stays_within_its_bound_over_many_names_and_evicted_names_still_work()
    {
        using var dir = new TempDir();
        using var pki = new TestPki();
        await using var origin = await TestOrigin.StartAsync(pki.Issue(["*.names.test"]));
        var caPath = pki.WriteCaPem(dir.Path);
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{caPath}]
            rules:
              - name: many-names
                hosts: ["*.names.test"]
                ports: [{origin.HttpsPort}]
                action: allow
            """;
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(dir.Path, "proxy"), policy,
            Enumerable.Range(0, Names).SelectMany(i => new[] { "--resolve", Name(i) + "=127.0.0.1" }),
            new Dictionary<string, string> { ["PROXYGUARD_LIMIT_CERTIFICATE_CACHE_SIZE"] = Bound.ToString(CultureInfo.InvariantCulture) });
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);

        var peak = 0.0;
        for (var start = 0; start < Names; start += 25)
        {
            // 25 names at a time (new connections, one handshake each), then the cache's size.
            var batch = Enumerable.Range(start, 25).Select(async i =>
            {
                using var response = await client.GetAsync($"https://{Name(i)}:{origin.HttpsPort}/echo/{i}");
                return response.StatusCode;
            });
            Assert.All(await Task.WhenAll(batch), status => Assert.Equal(HttpStatusCode.OK, status));
            peak = Math.Max(peak, await MetricAsync(proxy, "proxyguard_certificate_cache_entries"));
        }

        Assert.InRange(peak, 1, Bound);
        var minted = await MetricAsync(proxy, "proxyguard_certificates_minted_total");
        Assert.True(minted >= Names, $"minted {minted}");

        // The first names were evicted long ago: a new connection to each gets a freshly minted leaf that works.
        using var fresh = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        for (var i = 0; i < 10; i++)
        {
            using var response = await fresh.GetAsync($"https://{Name(i)}:{origin.HttpsPort}/echo/again-{i}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(minted + 10, await MetricAsync(proxy, "proxyguard_certificates_minted_total"));
        Assert.InRange(await MetricAsync(proxy, "proxyguard_certificate_cache_entries"), 1, Bound);
    }

    [Fact]
    public void Evicted_leaves_request_a_full_collection_every_n_evictions_so_their_native_state_is_freed()
    {
        using var dir = new TempDir();
        using var ca = CertificateAuthority.LoadOrCreate(Path.Combine(dir.Path, "ca"), out _);
        var collections = 0;
        using var cache = new LeafCertificateCache(ca, capacity: 4, logger: null, time: null, collectAfter: 8, collect: () => collections++);
        for (var i = 0; i < 4; i++)
        {
            cache.Get(Name(i));
        }

        Assert.Equal(0, collections); // filling the cache evicts nothing
        for (var i = 4; i < 4 + 17; i++)
        {
            cache.Get(Name(i));
        }

        // 17 evictions: one collection after the 8th and one after the 16th.
        Assert.Equal(2, collections);
        Assert.Equal(2, cache.Collections);
        Assert.Equal(4, cache.Count);
        Assert.Equal(21, cache.Minted);
    }

    private static async Task<double> MetricAsync(ProxyProcess proxy, string name)
    {
        using var client = new HttpClient();
        var text = await client.GetStringAsync(proxy.AdminUrl + "/metrics");
        var line = text.Split('\n').First(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
    }
}
