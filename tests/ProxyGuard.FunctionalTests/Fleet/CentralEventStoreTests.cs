using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Npgsql;
using ProxyGuard.FunctionalTests.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Fleet;

/// <summary>
/// Replicas sharing one PostgreSQL event store: faults under load (a replica SIGKILLed, PostgreSQL stopped for
/// ~10 s) lose no event, duplicate none, and every replica serves the same gapless cursor; tampering with a stored
/// event is found by <c>events verify</c>, locally and centrally.
/// </summary>
[Collection("proxy")]
public sealed class CentralEventStoreTests : IClassFixture<AuditFixture>
{
    /// <summary>Responses this close before the SIGKILL may lose their event (the local store commits every 50 ms).</summary>
    private static readonly TimeSpan CrashWindow = TimeSpan.FromMilliseconds(300);

    private readonly AuditFixture _f;
    private readonly ITestOutputHelper _output;

    public CentralEventStoreTests(AuditFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    [RequiresPostgresFact]
    public async Task Three_replicas_survive_a_SIGKILL_and_a_PostgreSQL_outage_with_one_event_per_response_in_one_gapless_cursor()
    {
        var total = Stopwatch.StartNew();
        await using var pg = await PostgresServer.StartAsync();
        var a = await StartReplicaAsync("fleet-a", pg);
        var b = await StartReplicaAsync("fleet-b", pg);
        var c = await StartReplicaAsync("fleet-c", pg);
        ProxyProcess? c2 = null;
        var cDisposed = false;
        try
        {
            using var followCts = new CancellationTokenSource();
            var follower = FollowAsync(a, followCts.Token);

            // Load: two senders per replica, allow and deny requests with unique markers; a marker is recorded only
            // when its response arrived.
            var sent = new ConcurrentDictionary<string, (string Decision, string Replica, DateTime At)>();
            using var loadCts = new CancellationTokenSource();
            var senders = new[] { a, a, b, b, c, c }.Select((proxy, i) => Task.Run(() => SendUntilAsync(proxy, i, sent, loadCts.Token))).ToArray();

            // Mid-load: every replica is answering (the first requests on a slow machine include JIT warm-up).
            await Traffic.WaitUntilAsync(() => Task.FromResult(sent.Values.Count(v => v.Replica == "c") >= 100 && sent.Count >= 400), "load on every replica", 60);
            c.KillHard();
            var killedAt = DateTime.UtcNow;
            Assert.Equal(128 + 9, await c.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            _output.WriteLine($"SIGKILL at {total.Elapsed.TotalSeconds:F1}s, {sent.Count} responses so far");

            await Task.Delay(1000);
            await pg.StopAsync();
            var stoppedAt = Stopwatch.StartNew();
            _output.WriteLine($"PostgreSQL stopped at {total.Elapsed.TotalSeconds:F1}s");

            // While PostgreSQL is down the replicas keep serving and say they are degraded.
            await Traffic.WaitUntilAsync(async () => (await HealthAsync(a)).Contains("degraded: events-store-unreachable", StringComparison.Ordinal), "a degraded /healthz", 15);
            var health = await HealthAsync(b);
            Assert.StartsWith("200 ok\n", health, StringComparison.Ordinal);
            Assert.Contains("degraded: events-store-unreachable", health, StringComparison.Ordinal);
            Assert.Contains("proxyguard_events_shipping_up 0", await MetricsAsync(a), StringComparison.Ordinal);
            var before = sent.Count;
            await Task.Delay(TimeSpan.FromSeconds(10) - stoppedAt.Elapsed);
            Assert.True(sent.Count > before + 50, $"the replicas kept serving while PostgreSQL was down ({sent.Count - before} responses)");
            await pg.StartAgainAsync();
            _output.WriteLine($"PostgreSQL started again at {total.Elapsed.TotalSeconds:F1}s after {stoppedAt.Elapsed.TotalSeconds:F1}s");

            await Task.Delay(2000);
            await loadCts.CancelAsync();
            await Task.WhenAll(senders);
            _output.WriteLine($"load stopped at {total.Elapsed.TotalSeconds:F1}s: {sent.Count} responses");

            // The operator restarts the killed replica on its data directory: its outbox ships under the same replica id.
            c2 = await ProxyProcess.StartWithPolicyFileAsync(c.Directory, c.PolicyPath, ReplicaArgs(pg), AuditFixture.Environment);
            await c.DisposeAsync();
            cDisposed = true;

            var required = sent.Where(s => s.Value.Replica != "c" || s.Value.At < killedAt - CrashWindow).Select(s => s.Key).ToHashSet();
            List<JsonElement> all = [];
            await Traffic.WaitUntilAsync(
                async () =>
                {
                    all = await a.EventsAsync();
                    var seen = Markers(all).Keys.ToHashSet();
                    return required.All(seen.Contains) && await BacklogAsync(a) == 0 && await BacklogAsync(b) == 0 && await BacklogAsync(c2) == 0;
                },
                "every response's event in the central store",
                45);

            // Shipped rows become readable when the sequencer's next round numbers them: read until the count is stable.
            for (var previous = -1; previous != all.Count;)
            {
                previous = all.Count;
                await Task.Delay(1000);
                all = await a.EventsAsync();
            }

            // Every response has exactly one event, with its decision; the crash window holds at most one.
            var byMarker = Markers(all);
            foreach (var (marker, (decision, _, _)) in sent)
            {
                if (!byMarker.TryGetValue(marker, out var events))
                {
                    Assert.DoesNotContain(marker, required);
                    continue;
                }

                var e = Assert.Single(events);
                Assert.Equal(decision, e.GetProperty("decision").GetString());
            }

            // One gapless cursor, the same through every surviving replica.
            var ids = all.Select(e => e.GetProperty("id").GetInt64()).ToList();
            Assert.Equal(Enumerable.Range(1, ids.Count).Select(i => (long)i), ids);
            var keys = all.Select(Key).ToList();
            Assert.Equal(keys.Count, keys.Distinct().Count());
            Assert.Equal(3, all.Select(e => e.GetProperty("replica").GetString()).Distinct().Count());
            foreach (var other in new[] { b, c2 })
            {
                Assert.Equal(keys, (await other.EventsAsync()).Select(Key).ToList());
            }

            // The client that followed the stream through both faults saw the same sequence: no gap, no repeat.
            await Traffic.WaitUntilAsync(() => Task.FromResult(follower.Seen.Count >= all.Count), "the follower to catch up", 30);
            await followCts.CancelAsync();
            await follower.Task;
            Assert.Empty(follower.Violations);
            Assert.Equal(keys, follower.Seen.Take(all.Count).ToList());
            Assert.True(follower.Failures > 0, "the follower met the outage (503 or refused) at least once");

            // Every replica's chain, its order in the cursor and the cursor itself verify after the faults.
            await AssertVerifyAsync(["events", "verify", "--events-store", pg.Url], 0, "chain intact");
            _output.WriteLine($"{all.Count} events, {required.Count} required, follower retried {follower.Failures} times; {total.Elapsed.TotalSeconds:F1}s");
        }
        finally
        {
            foreach (var p in new[] { a, b, cDisposed ? null : c, c2 })
            {
                if (p is not null)
                {
                    await p.DisposeAsync();
                }
            }
        }
    }

    [RequiresPostgresFact]
    public async Task Events_verify_names_an_edited_or_deleted_event_in_SQLite_and_in_PostgreSQL()
    {
        await using var pg = await PostgresServer.StartAsync();
        var proxy = await StartReplicaAsync("verify", pg, "--replica-id", "verify-1");
        try
        {
            for (var i = 0; i < 20; i++)
            {
                var reply = await Traffic.GetAsync(proxy, $"http://localhost:{_f.Origin.HttpPort}/echo/durable/{i}");
                Assert.Equal(200, reply.Status);
            }

            await Traffic.WaitUntilAsync(async () => (await proxy.EventsAsync()).Count >= 20 && await BacklogAsync(proxy) == 0, "20 events shipped");
        }
        finally
        {
            proxy.Signal(15);
            await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60));
            await proxy.DisposeAsync();
        }

        var local = new[] { "events", "verify", "--data-dir", proxy.DataDirectory };
        var central = new[] { "events", "verify", "--events-store", pg.Url };
        await AssertVerifyAsync(local, 0, "ok: local store");
        await AssertVerifyAsync(central, 0, "ok: replica verify-1: 20 events, chain intact");

        // SQLite: an edited column, then (after restoring it) a deleted row.
        await SqliteAsync(proxy, "UPDATE events SET host = 'elsewhere.example' WHERE id = 5");
        await AssertVerifyAsync(local, 1, "BROKEN: local store", "at id 5: event 5 does not match its hash");
        await SqliteAsync(proxy, "UPDATE events SET host = 'localhost' WHERE id = 5");
        await AssertVerifyAsync(local, 0, "ok: local store");
        await SqliteAsync(proxy, "DELETE FROM events WHERE id = 8");
        await AssertVerifyAsync(local, 1, "at id 8: event 8 is missing (deleted)");

        // PostgreSQL: the same, per replica.
        await PostgresAsync(pg, "UPDATE proxyguard_events SET status = 204 WHERE replica_id = 'verify-1' AND local_id = 11");
        await AssertVerifyAsync(central, 1, "BROKEN: replica verify-1: at id 11: event 11 does not match its hash");
        await PostgresAsync(pg, "UPDATE proxyguard_events SET status = 200 WHERE replica_id = 'verify-1' AND local_id = 11");
        await AssertVerifyAsync(central, 0, "ok: replica verify-1");
        await PostgresAsync(pg, "DELETE FROM proxyguard_events WHERE replica_id = 'verify-1' AND local_id = 20");
        await AssertVerifyAsync(central, 1, "at id 20: event 20 (the newest id the replica shipped) is missing (deleted)");
    }

    private Task<ProxyProcess> StartReplicaAsync(string name, PostgresServer pg, params string[] extra) =>
        ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, name), _f.Policy, [.. ReplicaArgs(pg), .. extra], AuditFixture.Environment);

    private static string[] ReplicaArgs(PostgresServer pg) => ["--resolve", "origin.test=127.0.0.1", "--events-store", pg.Url];

    private async Task SendUntilAsync(ProxyProcess proxy, int index, ConcurrentDictionary<string, (string, string, DateTime)> sent, CancellationToken ct)
    {
        var replica = ((char)('a' + (index / 2))).ToString();
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        for (var i = 0; !ct.IsCancellationRequested && i < 2000; i++)
        {
            var marker = Traffic.Marker();
            var deny = i % 5 == 0;
            var path = deny ? $"/echo/blocked/{marker}" : $"/echo/durable/{marker}";
            var reply = await Traffic.SendAsync(client, HttpMethod.Get, $"http://localhost:{_f.Origin.HttpPort}{path}");
            if (reply.Status == 0)
            {
                if (proxy.HasExited)
                {
                    return;
                }

                await Task.Delay(50, CancellationToken.None);
                continue;
            }

            Assert.Equal(deny ? 403 : 200, reply.Status);
            sent[marker] = (deny ? "deny" : "allow", replica, DateTime.UtcNow);
        }
    }

    private static Dictionary<string, List<JsonElement>> Markers(List<JsonElement> events) =>
        events.Where(e => e.GetProperty("kind").GetString() == "request")
            .Select(e => (Path: AdminApiTests.Path(e), Event: e))
            .Where(x => x.Path.StartsWith("/echo/durable/", StringComparison.Ordinal) || x.Path.StartsWith("/echo/blocked/", StringComparison.Ordinal))
            .GroupBy(x => x.Path[(x.Path.LastIndexOf('/') + 1)..])
            .ToDictionary(g => g.Key, g => g.Select(x => x.Event).ToList());

    private static string Key(JsonElement e) => $"{e.GetProperty("id").GetInt64()}:{e.GetProperty("replica").GetString()}:{e.GetProperty("localId").GetInt64()}";

    private static async Task<string> HealthAsync(ProxyProcess proxy)
    {
        using var client = proxy.AdminClient();
        using var response = await client.GetAsync("healthz");
        return $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
    }

    private static async Task<string> MetricsAsync(ProxyProcess proxy)
    {
        using var client = proxy.AdminClient();
        return await client.GetStringAsync("metrics");
    }

    private static async Task<long> BacklogAsync(ProxyProcess proxy)
    {
        var line = (await MetricsAsync(proxy)).Split('\n').Single(l => l.StartsWith("proxyguard_events_shipping_backlog ", StringComparison.Ordinal));
        return (long)double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Follows the central stream on one replica from the start, as <c>events --follow</c> does, through outages.</summary>
    private static Follower FollowAsync(ProxyProcess proxy, CancellationToken ct)
    {
        var follower = new Follower();
        follower.Task = Task.Run(async () =>
        {
            using var client = proxy.AdminClient();
            long cursor = 0;
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.GetAsync($"api/events?after={cursor}&limit=1000", ct);
                    if (!response.IsSuccessStatusCode)
                    {
                        follower.Failures++;
                        await Task.Delay(200, ct);
                        continue;
                    }

                    using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                    var events = doc.RootElement.GetProperty("events");
                    foreach (var e in events.EnumerateArray())
                    {
                        var id = e.GetProperty("id").GetInt64();
                        if (id != cursor + 1)
                        {
                            follower.Violations.Add($"after {cursor} came {id}");
                        }

                        cursor = id;
                        follower.Seen.Enqueue(Key(e));
                    }

                    if (events.GetArrayLength() == 0)
                    {
                        await Task.Delay(100, ct);
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }
                catch (HttpRequestException)
                {
                    follower.Failures++;
                    await Task.Delay(200, CancellationToken.None);
                }
            }
        }, CancellationToken.None);
        return follower;
    }

    private async Task AssertVerifyAsync(string[] args, int exitCode, params string[] expected)
    {
        var result = await Cli.RunAsync(_f.Dir.Path, args);
        _output.WriteLine($"$ proxyguard {string.Join(' ', args)}\n{result.All}");
        Assert.True(result.ExitCode == exitCode, $"exit {result.ExitCode}, expected {exitCode}:\n{result.All}");
        foreach (var text in expected)
        {
            Assert.Contains(text, result.Stdout, StringComparison.Ordinal);
        }
    }

    private static async Task SqliteAsync(ProxyProcess proxy, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(proxy.DataDirectory, "events.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }

    private static async Task PostgresAsync(PostgresServer pg, string sql)
    {
        await using var connection = new NpgsqlConnection(pg.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }

    private sealed class Follower
    {
        public Task Task { get; set; } = Task.CompletedTask;

        public ConcurrentQueue<string> Seen { get; } = new();

        public List<string> Violations { get; } = [];

        public int Failures { get; set; }
    }
}
