using System.Diagnostics;
using System.Globalization;
using Npgsql;
using ProxyGuard.Audit;
using ProxyGuard.Audit.Central;

namespace ProxyGuard.Bench.Events;

/// <summary>
/// Sustained events/s into a central PostgreSQL store from several replicas: each replica is a local event store
/// (its own data directory and writer) with its own shipping loop and connections, in this one process; producers
/// write as fast as each local store commits. The figure is the rate at which the central cursor advances
/// (events shipped, sequenced and readable), measured after a warm-up.
/// </summary>
internal static class CentralBench
{
    public static async Task<int> RunAsync(BenchOptions options)
    {
        var (connectionString, display) = CentralConnection.Parse(options.Central!, null, Environment.GetEnvironmentVariable, "--central");
        var root = Path.Combine(Path.GetTempPath(), "pg-bench-central-" + Guid.NewGuid().ToString("N"));
        var replicas = new List<(EventStore Store, CentralStore Central)>();
        for (var r = 0; r < options.Replicas; r++)
        {
            var store = EventStore.Open(Path.Combine(root, $"r{r}"), new EventStoreOptions { RetainFor = null, MaxEvents = null, MaxUnshipped = 10_000_000 });
            var shipper = CentralStore.Create(
                new CentralStoreOptions { ConnectionString = connectionString, Display = display, ReplicaId = $"bench-{Guid.NewGuid():N}"[..18], RetainFor = null },
                store);
            await shipper.EnsureSchemaAsync(CancellationToken.None);
            shipper.Start();
            replicas.Add((store, shipper));
        }

        using var stop = new CancellationTokenSource();
        var producers = replicas.SelectMany((replica, r) => Enumerable.Range(0, Math.Max(1, options.Producers / options.Replicas)).Select(p => Task.Run(async () =>
        {
            var factory = new EventFactory((r * 16) + p);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await replica.Store.WriteAsync(factory.Next(deny: false), stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }))).ToArray();

        await using var source = NpgsqlDataSource.Create(connectionString);
        async Task<long> CursorAsync()
        {
            await using var command = source.CreateCommand("SELECT last_seq FROM proxyguard_sequence WHERE id = 1");
            return (long)(await command.ExecuteScalarAsync())!;
        }

        await Task.Delay(TimeSpan.FromSeconds(2));
        var startCursor = await CursorAsync();
        var startLocal = replicas.Sum(x => x.Store.WrittenEvents);
        var startCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var perSecond = new List<double>();
        var last = startCursor;
        var lastTime = TimeSpan.Zero;
        while (options.Seconds - clock.Elapsed.TotalSeconds > 0.05)
        {
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(1, options.Seconds - clock.Elapsed.TotalSeconds)));
            var now = await CursorAsync();
            var elapsed = clock.Elapsed;
            perSecond.Add((now - last) / (elapsed - lastTime).TotalSeconds);
            last = now;
            lastTime = elapsed;
        }

        var seconds = clock.Elapsed.TotalSeconds;
        var sequenced = await CursorAsync() - startCursor;
        var local = replicas.Sum(x => x.Store.WrittenEvents) - startLocal;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - startCpu;
        var backlog = replicas.Sum(x => x.Store.UnshippedEvents);
        await stop.CancelAsync();
        await Task.WhenAll(producers);
        foreach (var (store, centralStore) in replicas)
        {
            await centralStore.DisposeAsync();
            await store.DisposeAsync();
        }

        Directory.Delete(root, recursive: true);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"replicas={options.Replicas} producers/replica={Math.Max(1, options.Producers / options.Replicas)} cores={Environment.ProcessorCount} window={seconds:F1}s (after 2s warm-up) store={display}"));
        Console.WriteLine(string.Create(inv, $"central: {sequenced / seconds:N0} events/s sustained into PostgreSQL, sequenced and readable ({sequenced:N0} events)"));
        Console.WriteLine(string.Create(inv, $"local: {local / seconds:N0} events/s committed by the replicas; outbox backlog at the end {backlog:N0}"));
        Console.WriteLine(string.Create(inv, $"per second (central): {string.Join(", ", perSecond.Select(v => v.ToString("N0", inv)))}"));
        Console.WriteLine(string.Create(inv, $"this process (replicas + shippers, not PostgreSQL): {cpu.TotalSeconds / seconds:F2} cores busy"));

        // The one line to compare across runs (the lead re-runs it on a quiet machine).
        var median = perSecond.Count == 0 ? 0 : perSecond.Order().ElementAt(perSecond.Count / 2);
        Console.WriteLine(string.Create(inv,
            $"RESULT central-events: {sequenced / seconds:F0} events/s sustained into PostgreSQL from {options.Replicas} replicas (median second {median:F0}, {seconds:F0} s, backlog at end {backlog}, {Environment.ProcessorCount} cores)"));
        return 0;
    }
}
