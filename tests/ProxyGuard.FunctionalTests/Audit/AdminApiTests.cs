using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>SPEC 5 admin API through a running proxy: cursor paging under load, filters, token auth, query redaction.</summary>
[Collection("proxy")]
public sealed class AdminApiTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;

    public AdminApiTests(AuditFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Paging_with_after_returns_every_event_once_in_order_while_requests_run()
    {
        var proxy = _f.Proxy;
        var start = (await proxy.EventsAsync()).Select(e => e.GetProperty("id").GetInt64()).DefaultIfEmpty(0).Max();
        const int tasks = 6;
        const int perTask = 50;
        var sent = new ConcurrentDictionary<string, bool>(); // marker → expected deny
        var trafficDone = false;

        // Producers: 300 requests from six clients (HTTPS through CONNECT, and plain HTTP), a fifth denied.
        var traffic = Enumerable.Range(0, tasks).Select(t => Task.Run(async () =>
        {
            using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
            for (var i = 0; i < perTask; i++)
            {
                var marker = Traffic.Marker();
                var deny = i % 5 == 0;
                var path = deny ? $"/echo/blocked/{marker}" : $"/echo/page/{marker}";
                var url = t % 3 == 2 ? _f.HttpUrl(path) : _f.HttpsUrl(path);
                var reply = await Traffic.SendAsync(client, HttpMethod.Get, url);
                Assert.Equal(deny ? 403 : 200, reply.Status);
                sent[marker] = deny;
            }
        })).ToArray();
        var all = Task.WhenAll(traffic).ContinueWith(_ => Volatile.Write(ref trafficDone, true), TaskScheduler.Default);

        // Consumer: small pages with the cursor, concurrently with the producers.
        var paged = new List<JsonElement>();
        var cursor = start;
        var pagesDuringTraffic = 0;
        using var admin = proxy.AdminClient();
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            Assert.True(DateTime.UtcNow < deadline, $"paging did not see all events; {paged.Count} so far");
            using var doc = JsonDocument.Parse(await admin.GetStringAsync($"api/events?after={cursor}&limit=7"));
            var events = doc.RootElement.GetProperty("events");
            if (events.GetArrayLength() > 0 && !Volatile.Read(ref trafficDone))
            {
                pagesDuringTraffic++;
            }

            foreach (var e in events.EnumerateArray())
            {
                paged.Add(e.Clone());
            }

            var next = doc.RootElement.GetProperty("next").GetInt64();
            Assert.True(next >= cursor, "next went backwards");
            Assert.True(events.GetArrayLength() == 0 ? next == cursor : next == events[events.GetArrayLength() - 1].GetProperty("id").GetInt64());
            cursor = next;
            if (events.GetArrayLength() == 0)
            {
                if (Volatile.Read(ref trafficDone) && RequestMarkers(paged).Count >= tasks * perTask)
                {
                    break;
                }

                await Task.Delay(20);
            }
        }

        await all;
        await Task.WhenAll(traffic); // surface assertion failures of the producers

        // Every id once, strictly increasing.
        var ids = paged.Select(e => e.GetProperty("id").GetInt64()).ToList();
        for (var i = 1; i < ids.Count; i++)
        {
            Assert.True(ids[i] > ids[i - 1], $"ids not strictly increasing at {i}: {ids[i - 1]} then {ids[i]}");
        }

        // Nothing skipped: the concurrent pages are exactly what a final read returns.
        var final = (await proxy.EventsAsync()).Where(e => e.GetProperty("id").GetInt64() > start).Select(e => e.GetProperty("id").GetInt64()).ToList();
        Assert.Equal(final, ids);

        // Each request's event exactly once, with its decision.
        var markers = RequestMarkers(paged);
        Assert.Equal(tasks * perTask, sent.Count);
        foreach (var (marker, deny) in sent)
        {
            Assert.True(markers.TryGetValue(marker, out var events) && events.Count == 1, $"marker {marker}: {(markers.TryGetValue(marker, out var e) ? e.Count : 0)} events");
            Assert.Equal(deny ? "deny" : "allow", events![0].GetProperty("decision").GetString());
            Assert.Equal(deny ? "blocked-path" : "origin", events[0].GetProperty("rule").GetString());
        }

        Assert.True(pagesDuringTraffic >= 3, $"only {pagesDuringTraffic} non-empty pages were read while requests ran");
    }

    [Fact]
    public async Task Filters_select_by_decision_and_host()
    {
        var marker = Traffic.Marker();
        Assert.Equal(200, (await Traffic.GetAsync(_f.Proxy, _f.HttpsUrl($"/echo/filter/{marker}/a", "origin.test"))).Status);
        Assert.Equal(200, (await Traffic.GetAsync(_f.Proxy, _f.HttpsUrl($"/echo/filter/{marker}/b", "origin.test"))).Status);
        Assert.Equal(403, (await Traffic.GetAsync(_f.Proxy, _f.HttpsUrl($"/echo/blocked/{marker}"))).Status);
        Assert.Equal(0, (await Traffic.GetAsync(_f.Proxy, $"https://denied.test:{_f.Origin.HttpsPort}/{marker}")).Status);
        await _f.Proxy.WaitForEventAsync(e => e.GetProperty("host").GetString() == "denied.test");
        await _f.Proxy.WaitForEventAsync(e => Path(e).Contains(marker, StringComparison.Ordinal) && e.GetProperty("decision").GetString() == "deny");

        var denies = await _f.Proxy.EventsAsync("&decision=deny");
        Assert.NotEmpty(denies);
        Assert.All(denies, e => Assert.Equal("deny", e.GetProperty("decision").GetString()));
        Assert.Contains(denies, e => Path(e) == $"/echo/blocked/{marker}");
        Assert.Contains(denies, e => e.GetProperty("kind").GetString() == "connect" && e.GetProperty("host").GetString() == "denied.test"
                                      && e.GetProperty("rule").GetString() == "default");

        var byHost = await _f.Proxy.EventsAsync("&host=origin.test");
        Assert.All(byHost, e => Assert.Equal("origin.test", e.GetProperty("host").GetString()));
        Assert.Equal(2, byHost.Count(e => Path(e).StartsWith($"/echo/filter/{marker}/", StringComparison.Ordinal)));
        Assert.Contains(byHost, e => e.GetProperty("kind").GetString() == "connect");

        // Host filters are normalised like stored hosts; filters combine.
        var upper = await _f.Proxy.EventsAsync("&host=ORIGIN.TEST.&decision=allow");
        Assert.Equal(byHost.Where(e => e.GetProperty("decision").GetString() == "allow").Select(Id), upper.Select(Id));
        Assert.Empty(await _f.Proxy.EventsAsync("&host=origin.test&decision=deny"));
        Assert.Empty(await _f.Proxy.EventsAsync("&client=nobody"));
    }

    [Fact]
    public async Task Api_requires_the_bearer_token_but_health_and_metrics_do_not()
    {
        using var anonymous = new HttpClient { BaseAddress = new Uri(_f.Proxy.AdminUrl + "/") };
        foreach (var path in new[] { "api/events", "api/events?after=0&limit=5", "api/policy" })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Get, path, null));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Get, path, new("Bearer", "wrong")));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Get, path, new("Bearer", ProxyProcess.AdminToken + "x")));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Get, path, new("Bearer", ProxyProcess.AdminToken[..^1])));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Get, path,
                new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + ProxyProcess.AdminToken)))));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(anonymous, HttpMethod.Get, path, new("Bearer", ProxyProcess.AdminToken)));
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Post, "api/policy/reload", null));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(anonymous, HttpMethod.Post, "api/policy/reload", new("Bearer", "nope")));

        using (var unauthorized = await anonymous.GetAsync("api/events"))
        {
            Assert.Contains("Bearer", unauthorized.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain("\"events\"", await unauthorized.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var health = await anonymous.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("ok", (await health.Content.ReadAsStringAsync()).Trim());
        using var metrics = await anonymous.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.StartsWith("text/plain", metrics.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        PrometheusText.Parse(await metrics.Content.ReadAsStringAsync());

        // Bad paging parameters are refused, not guessed.
        using var admin = _f.Proxy.AdminClient();
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("api/events?after=-1")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("api/events?limit=abc")).StatusCode);
    }

    [Fact]
    public async Task Query_values_never_appear_in_events()
    {
        const string value = "synthetic-value-7d1e4b";
        var marker = Traffic.Marker();
        Assert.Equal(200, (await Traffic.GetAsync(_f.Proxy, _f.HttpsUrl($"/echo/q/{marker}?token={value}&x=1"))).Status);
        Assert.Equal(403, (await Traffic.GetAsync(_f.Proxy, _f.HttpsUrl($"/echo/blocked/{marker}?token={value}"))).Status);
        Assert.Equal(200, (await Traffic.GetAsync(_f.Proxy, _f.HttpUrl($"/echo/q/{marker}?{value}"))).Status);
        Assert.Equal(403, (await Traffic.GetAsync(_f.Proxy, _f.HttpUrl($"/echo/blocked/{marker}?a={value}#frag"))).Status);
        await _f.Proxy.WaitForEventAsync(e => Path(e).StartsWith($"/echo/blocked/{marker}", StringComparison.Ordinal) && e.GetProperty("scheme").GetString() == "http");
        await _f.Proxy.WaitForEventAsync(e => Path(e).StartsWith($"/echo/q/{marker}", StringComparison.Ordinal) && e.GetProperty("scheme").GetString() == "http");

        // The origin did get the value (the proxy forwards queries unchanged) ...
        Assert.Contains(_f.Origin.Received, r => r.Contains(value, StringComparison.Ordinal));

        // ... but neither the raw API body nor the CLI output carries it; the parameter names stay.
        var raw = string.Join("\n", (await _f.Proxy.EventsAsync()).Select(e => e.GetRawText()));
        Assert.Contains(marker, raw, StringComparison.Ordinal);
        Assert.DoesNotContain(value, raw, StringComparison.Ordinal);
        var mine = (await _f.Proxy.EventsAsync()).Where(e => Path(e).Contains(marker, StringComparison.Ordinal)).Select(Path).ToList();
        Assert.Equal(4, mine.Count);
        Assert.Contains($"/echo/q/{marker}?token=&x=", mine);
        Assert.Contains($"/echo/blocked/{marker}?token=", mine);

        var cli = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--json"], _f.Dir.Path,
            new Dictionary<string, string> { ["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken });
        Assert.True(cli.ExitCode == 0, cli.All);
        Assert.Contains(marker, cli.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(value, cli.All, StringComparison.Ordinal);

        // Nor the database files on disk.
        foreach (var file in Directory.GetFiles(_f.Proxy.DataDirectory, "events.db*"))
        {
            var bytes = await ReadSharedAsync(file);
            Assert.DoesNotContain(value, Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        }

        Assert.DoesNotContain(value, _f.Proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_endpoint_describes_the_loaded_policy()
    {
        using var admin = _f.Proxy.AdminClient();
        using var doc = JsonDocument.Parse(await admin.GetStringAsync("api/policy"));
        var root = doc.RootElement;
        Assert.Equal(System.IO.Path.GetFullPath(_f.Proxy.PolicyPath), System.IO.Path.GetFullPath(root.GetProperty("file").GetString()!));
        var sha = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(_f.Proxy.PolicyPath)));
        Assert.Equal(sha, root.GetProperty("sha256").GetString(), ignoreCase: true);
        Assert.True(root.TryGetProperty("loadedAt", out _));
        Assert.Equal(["blocked-path", "origin", "dead-port"], root.GetProperty("rules").EnumerateArray().Select(r => r.GetProperty("name").GetString()));
        Assert.DoesNotContain(AuditFixture.SecretValue, root.GetRawText(), StringComparison.Ordinal);
    }

    private static Dictionary<string, List<JsonElement>> RequestMarkers(List<JsonElement> events) =>
        events.Where(e => e.GetProperty("kind").GetString() == "request")
            .Select(e => (Marker: MarkerOf(Path(e)), Event: e))
            .Where(x => x.Marker is not null)
            .GroupBy(x => x.Marker!)
            .ToDictionary(g => g.Key, g => g.Select(x => x.Event).ToList());

    private static string? MarkerOf(string path)
    {
        foreach (var prefix in new[] { "/echo/page/", "/echo/blocked/" })
        {
            if (path.StartsWith(prefix, StringComparison.Ordinal) && path.Length >= prefix.Length + 12)
            {
                return path.Substring(prefix.Length, 12);
            }
        }

        return null;
    }

    internal static string Path(JsonElement e) =>
        e.GetProperty("path").ValueKind == JsonValueKind.String ? e.GetProperty("path").GetString()! : string.Empty;

    private static long Id(JsonElement e) => e.GetProperty("id").GetInt64();

    private static async Task<HttpStatusCode> StatusAsync(HttpClient client, HttpMethod method, string path, AuthenticationHeaderValue? auth)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = auth;
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    internal static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }
}
