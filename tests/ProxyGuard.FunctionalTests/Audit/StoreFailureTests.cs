using System.Diagnostics;
using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// A store that cannot commit at run time (another process holds SQLite's write lock on events.db
/// longer than the store's busy timeout): requests fail closed with 503 audit-unavailable, /healthz
/// says so, nothing is forwarded, every allowed request is either recorded or counted as dropped,
/// and the proxy recovers when the lock goes away.
/// </summary>
[Collection("proxy")]
public sealed class StoreFailureTests : IClassFixture<AuditFixture>
{
    private const string Locker = """
        import signal, sqlite3, sys
        signal.alarm(300)  # never outlive a broken test
        c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
        c.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        sys.stdin.read()
        c.execute("ROLLBACK")
        print("released", flush=True)
        """;

    private readonly AuditFixture _f;

    public StoreFailureTests(AuditFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task A_locked_store_fails_requests_closed_and_recovers()
    {
        if (!Cli.Exists("python3"))
        {
            Assert.Fail("python3 is required to hold the SQLite lock");
        }

        var phases = new List<string>();
        var clock = Stopwatch.StartNew();
        await using var proxy = await _f.StartProxyAsync("locked");
        phases.Add($"started {clock.ElapsedMilliseconds}");
        var https = _f.Origin.HttpsPort;
        Assert.Equal(200, (await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/before")).Status);
        await proxy.WaitForEventAsync(e => AdminApiTests.Path(e) == "/echo/before");
        phases.Add($"first event {clock.ElapsedMilliseconds}");

        var psi = new ProcessStartInfo("python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(Locker);
        psi.ArgumentList.Add(Path.Combine(proxy.DataDirectory, "events.db"));
        using var locker = Process.Start(psi)!;
        try
        {
            var first = await locker.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(first == "locked", "locker: " + first);
            phases.Add($"locked {clock.ElapsedMilliseconds}");

            // Requests during the lock: allowed ones complete while the writer still waits for the
            // lock; once its busy timeout expires (SQLite's plus the command timeout of
            // Microsoft.Data.Sqlite, about 30 s) the store is failing and requests get 503.
            var allowedDuringLock = new List<string>();
            var refused = new List<string>();
            var log = new List<string>();
            var deadline = DateTime.UtcNow.AddSeconds(150);
            Reply reply;
            do
            {
                Assert.True(DateTime.UtcNow < deadline,
                    $"the proxy never reported the failing store; {string.Join(", ", phases)}; replies: {string.Join(", ", log)}\n{proxy.Output}");
                var marker = Traffic.Marker();
                var sw = Stopwatch.StartNew();
                reply = await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/during/{marker}");
                log.Add($"{reply.Status}/{sw.ElapsedMilliseconds}ms");
                if (reply.Status == 200)
                {
                    allowedDuringLock.Add(marker);
                    await Task.Delay(500);
                }
                else
                {
                    refused.Add(marker);
                }
            }
            while (reply.Status == 200);

            Assert.Equal(503, reply.Status);
            Assert.Equal("audit-unavailable", reply.Reason);
            Assert.NotEmpty(allowedDuringLock);

            // A request the policy denies is refused too (its deny event cannot be written).
            var deniedMarker = Traffic.Marker();
            var denied = await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/blocked/{deniedMarker}");
            Assert.Equal(503, denied.Status);

            using var anonymous = new HttpClient();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await anonymous.GetAsync(proxy.AdminUrl + "/healthz")).StatusCode);
            using (var readyz = await anonymous.GetAsync(proxy.AdminUrl + "/readyz"))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
                Assert.Contains("audit: audit-unavailable\n", await readyz.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync(proxy.AdminUrl + "/livez")).StatusCode);
            var failing = await MetricsTests.ScrapeAsync(proxy);
            Assert.Equal(0, failing.Value("proxyguard_audit_store_healthy"));

            // Nothing refused reached the origin.
            foreach (var marker in refused.Append(deniedMarker))
            {
                Assert.DoesNotContain(_f.Origin.Received, r => r.Contains(marker, StringComparison.Ordinal));
            }

            // Release the lock: the store recovers and requests flow again.
            locker.StandardInput.Close();
            await locker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            await Traffic.WaitUntilAsync(async () => (await anonymous.GetAsync(proxy.AdminUrl + "/healthz")).StatusCode == HttpStatusCode.OK,
                "the store to recover", 120);
            Assert.Equal(200, (await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/after")).Status);
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync(proxy.AdminUrl + "/readyz")).StatusCode);
            await proxy.WaitForEventAsync(e => AdminApiTests.Path(e) == "/echo/after", 30_000);

            // Conservation: each request allowed during the lock is either recorded (it was queued
            // before the store failed and committed after recovery) or counted as dropped.
            var events = await proxy.EventsAsync();
            var recorded = allowedDuringLock.Count(m => events.Any(e => AdminApiTests.Path(e) == $"/echo/during/{m}"));
            Assert.True(recorded >= 1, "the request queued while the writer waited for the lock was lost");
            var after = await MetricsTests.ScrapeAsync(proxy);
            Assert.Equal(1, after.Value("proxyguard_audit_store_healthy"));
            var droppedRequests = allowedDuringLock.Count - recorded;
            Assert.True(after.Value("proxyguard_events_dropped_total") >= droppedRequests,
                $"{droppedRequests} allowed requests have no event but only {after.Value("proxyguard_events_dropped_total")} drops were counted");
            Assert.DoesNotContain(events, e => AdminApiTests.Path(e).Contains(deniedMarker, StringComparison.Ordinal) && e.GetProperty("decision").GetString() == "allow");
        }
        finally
        {
            if (!locker.HasExited)
            {
                locker.Kill();
                await locker.WaitForExitAsync();
            }
        }
    }
}
