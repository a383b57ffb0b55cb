using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>
/// Audit completeness under a filling disk (issue 15): concurrent sandbox requests run while the data directory's file
/// system fills up. Every request that reached the origin has exactly one stored event (once space returns, the events
/// the writer held are committed), and every other request was refused with <c>503 audit-unavailable</c>.
/// The disk is a real small tmpfs where mounting is permitted; elsewhere the proxy's file size limit
/// (<c>RLIMIT_FSIZE</c>, set with <c>prlimit</c>) stops its writes the same way a full disk does, so the test always runs.
/// </summary>
[Collection("proxy")]
public sealed partial class AuditCompletenessTests : IAsyncLifetime, IDisposable
{
    private const int Workers = 8;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    private readonly TempDir _dir = new();
    private readonly TestPki _pki = new();
    private readonly ITestOutputHelper _log;
    private TestOrigin _origin = null!;

    public AuditCompletenessTests(ITestOutputHelper log)
    {
        _log = log;
    }

    public async Task InitializeAsync()
    {
        _origin = await TestOrigin.StartAsync(_pki.Issue(["localhost", "127.0.0.1"]));
    }

    public async Task DisposeAsync()
    {
        await _origin.DisposeAsync();
    }

    public void Dispose()
    {
        _pki.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Concurrent_requests_while_the_data_directory_fills_are_forwarded_only_with_exactly_one_stored_event()
    {
        var proxyDir = Path.Combine(_dir.Path, "proxy");
        var dataDir = Path.Combine(proxyDir, "data");
        Directory.CreateDirectory(dataDir);
        // PG_TEST_DISK_FULL=fsize uses the file size limit even where a tmpfs could be mounted (to try the fallback).
        var tmpfs = DiskFaults.TmpfsUnavailable.Value is null && Environment.GetEnvironmentVariable("PG_TEST_DISK_FULL") != "fsize";
        _log.WriteLine(tmpfs
            ? "disk: an 8 MiB tmpfs under the data directory, filled with a file until ENOSPC"
            : $"disk: no tmpfs ({DiskFaults.TmpfsUnavailable.Value ?? "PG_TEST_DISK_FULL=fsize"}); the proxy's RLIMIT_FSIZE is lowered instead");
        if (tmpfs)
        {
            await DiskFaults.MountTmpfsAsync(dataDir, "8m");
        }

        var filler = Path.Combine(dataDir, "filler");
        try
        {
            await using var proxy = await StartProxyAsync(proxyDir, ignoreFileSizeSignal: !tmpfs);
            var warm = await SendAsync(proxy, $"http://127.0.0.1:{_origin.HttpPort}/fill/warm");
            Assert.Equal((int)HttpStatusCode.OK, warm.Status);
            await proxy.WaitForEventAsync(e => e.TryGetProperty("path", out var p) && p.GetString() == "/fill/warm");

            // Eight clients send one request after another (plain HTTP and HTTPS through an intercepted tunnel, each
            // on its own connection); the disk fills while they run. Each stops after three refusals in a row past
            // the fill, or after 60 s.
            var results = new ConcurrentQueue<(string Path, Reply Reply, bool AfterFill)>();
            var filled = 0;
            var sw = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                var refusedInARow = 0;
                for (var i = 0; refusedInARow < 3 && sw.Elapsed < TimeSpan.FromSeconds(60); i++)
                {
                    var path = $"/fill/c{w}-{i}";
                    var url = (i + w) % 2 == 0
                        ? $"http://127.0.0.1:{_origin.HttpPort}{path}"
                        : $"https://localhost:{_origin.HttpsPort}{path}";
                    var afterFill = Volatile.Read(ref filled) == 1;
                    var reply = await SendAsync(proxy, url);
                    results.Enqueue((path, reply, afterFill));
                    refusedInARow = afterFill && reply.Status != (int)HttpStatusCode.OK ? refusedInARow + 1 : 0;
                }
            })).ToList();

            // The disk fills once traffic flows (16 requests done, or 10 s), so requests are in flight when it does.
            await Traffic.WaitUntilAsync(() => Task.FromResult(results.Count >= 16 || sw.Elapsed > TimeSpan.FromSeconds(10)), "traffic", 20);
            Assert.DoesNotContain(workers, t => t.IsCompleted);
            if (tmpfs)
            {
                var error = DiskFaults.FillUntilFull(filler, maxBytes: 16L * 1024 * 1024);
                Assert.Contains("No space left on device", error, StringComparison.Ordinal);
            }
            else
            {
                await SetFileSizeLimitAsync(proxy, "1:");
            }

            Volatile.Write(ref filled, 1);
            _log.WriteLine($"disk full after {sw.ElapsedMilliseconds} ms of traffic, {results.Count} requests done");
            await Task.WhenAll(workers);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"the proxy kept forwarding for 60 s with a full disk:\n{proxy.Output}");

            var all = results.ToList();
            var forwarded = all.Where(r => r.Reply.Status == (int)HttpStatusCode.OK).Select(r => r.Path).ToHashSet();
            var refused = all.Where(r => r.Reply.Status != (int)HttpStatusCode.OK).ToList();
            _log.WriteLine($"{all.Count} requests: {forwarded.Count} forwarded ({all.Count(r => r.AfterFill && r.Reply.Status == 200)} of them sent after the fill), {refused.Count} refused");

            // Every request either went through or was refused for the audit store's sake: nothing in between.
            foreach (var (path, reply, _) in refused)
            {
                Assert.True(
                    reply.Status == (int)HttpStatusCode.ServiceUnavailable && reply.Reason == "audit-unavailable" && reply.Decision == "deny",
                    $"{path}: {reply.Status} {reply.Reason} {reply.Decision} {reply.Body}");
            }

            Assert.True(refused.Count >= Workers, $"only {refused.Count} requests refused: the disk never filled?\n{proxy.Output}");
            Assert.NotEmpty(forwarded);

            // The origin saw exactly the forwarded requests.
            var atOrigin = _origin.Received.Select(r => r.Split(' ', 2)[1]).Where(p => p.StartsWith("/fill/c", StringComparison.Ordinal)).ToList();
            Assert.Equal(atOrigin.Count, atOrigin.Distinct().Count());
            Assert.Equal(forwarded.Order(StringComparer.Ordinal), atOrigin.Order(StringComparer.Ordinal));

            // Space returns: the store recovers by itself and commits what its writer held.
            if (tmpfs)
            {
                File.Delete(filler);
            }
            else
            {
                await SetFileSizeLimitAsync(proxy, "unlimited:");
            }

            await Traffic.WaitUntilAsync(async () => (await HealthAsync(proxy)) == HttpStatusCode.OK, "the proxy to be healthy again", 20);
            List<JsonElement> events = [];
            await Traffic.WaitUntilAsync(
                async () =>
                {
                    events = await proxy.EventsAsync();
                    var stored = events.Select(e => e.TryGetProperty("path", out var p) ? p.GetString() : null).ToHashSet();
                    return forwarded.All(stored.Contains);
                },
                "an event for every forwarded request",
                20);

            var byPath = events
                .Where(e => e.TryGetProperty("path", out var p) && p.GetString() is { } value && value.StartsWith("/fill/c", StringComparison.Ordinal))
                .GroupBy(e => e.GetProperty("path").GetString()!)
                .ToDictionary(g => g.Key, g => g.ToList());
            foreach (var path in forwarded)
            {
                var stored = byPath[path];
                Assert.True(stored.Count == 1, $"{path}: {stored.Count} events");
                Assert.Equal("allow", stored[0].GetProperty("decision").GetString());
            }

            // A refused request has no event, or a deny event with the audit reason (stored if the store took it).
            foreach (var (path, _, _) in refused)
            {
                foreach (var e in byPath.GetValueOrDefault(path) ?? [])
                {
                    Assert.Equal("deny", e.GetProperty("decision").GetString());
                    Assert.Equal("audit-unavailable", e.GetProperty("reason").GetString());
                }
            }

            Assert.False(proxy.HasExited, "the proxy exited:\n" + proxy.Output);
        }
        finally
        {
            if (tmpfs)
            {
                await DiskFaults.UnmountAsync(dataDir);
            }
        }
    }

    private async Task<ProxyProcess> StartProxyAsync(string proxyDir, bool ignoreFileSizeSignal)
    {
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{_pki.WriteCaPem(_dir.Path)}]
            rules:
              - name: origin
                hosts: [localhost, 127.0.0.1]
                ports: [{_origin.HttpPort}, {_origin.HttpsPort}]
                paths: ["/fill/**"]
                action: allow
            """;
        if (!ignoreFileSizeSignal)
        {
            return await ProxyProcess.StartAsync(proxyDir, policy);
        }

        // Past RLIMIT_FSIZE the kernel sends SIGXFSZ, which ends a process by default; a disk does not. The proxy
        // inherits an ignored disposition (the runtime installs no handler for it), and its writes then fail with
        // EFBIG like writes to a full disk fail with ENOSPC.
        var previous = Signal(SigXfsz, SigIgn);
        try
        {
            var proxy = await ProxyProcess.StartAsync(proxyDir, policy);
            var status = await File.ReadAllLinesAsync($"/proc/{proxy.Pid}/status");
            var ignored = Convert.ToUInt64(status.Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))[7..].Trim(), 16);
            Assert.True((ignored & (1UL << (SigXfsz - 1))) != 0, "the proxy does not ignore SIGXFSZ: " + string.Join(' ', status));
            return proxy;
        }
        finally
        {
            Signal(SigXfsz, previous);
        }
    }

    /// <summary>Sets the proxy's soft RLIMIT_FSIZE (the soft limit only, so it can be raised again without privileges).</summary>
    private static async Task SetFileSizeLimitAsync(ProxyProcess proxy, string limit)
    {
        var result = await Cli.RunProgramAsync("prlimit", ["--pid", proxy.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), $"--fsize={limit}"], Path.GetTempPath(), null, TimeSpan.FromSeconds(20));
        Assert.True(result.ExitCode == 0, $"prlimit --fsize={limit} failed: {result.All}");
    }

    private static async Task<Reply> SendAsync(ProxyProcess proxy, string url)
    {
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        client.Timeout = RequestTimeout;
        return await Traffic.SendAsync(client, HttpMethod.Get, url);
    }

    private static async Task<HttpStatusCode> HealthAsync(ProxyProcess proxy)
    {
        using var client = new HttpClient { Timeout = RequestTimeout };
        using var response = await client.GetAsync(proxy.AdminUrl + "/healthz");
        return response.StatusCode;
    }

    private const int SigXfsz = 25;
    private const nint SigIgn = 1;

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint Signal(int signal, nint handler);
}
