using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using ProxyGuard.Engine.Budgets;
using ProxyGuard.Policy;
using ProxyGuard.Tests.Shared;

namespace ProxyGuard.Bench.Budgets;

/// <summary>
/// The cost the budget stage adds to one request: find the budgets that apply (policy), build the key, check and
/// count in the ledger. Measured alone (no budgets store) and while a background sync runs against a real
/// PostgreSQL (the request path is the same; the sync only takes the meters' locks briefly).
/// <c>dotnet run -c Release --project bench/ProxyGuard.Bench.Budgets -- [--seconds N] [--keys N] [--threads N] [--no-postgres]</c>;
/// <c>--e2e</c>: whole requests through proxy processes instead (<see cref="EndToEnd"/>).
/// </summary>
public static class Program
{
    private const string Policy = """
        version: 1
        rules:
          - name: api
            hosts: ["*.example.com"]
            action: allow
        budgets:
          - name: slow-drip
            match: {hosts: ["*.example.com"], rule: api}
            per: [client, host]
            requests: 1000000/1m
            upload_bytes: 1GiB/1h
          - name: per-client
            per: [client]
            requests: 1000000/1h
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Contains("--e2e"))
        {
            return await EndToEnd.RunAsync(args);
        }

        var seconds = Arg(args, "--seconds", 3);
        var keys = Arg(args, "--keys", 1000);
        var threads = Arg(args, "--threads", 2);
        var policy = PolicyLoader.LoadText(Policy, "bench.yaml", new PolicyLoadOptions { CheckFilePermissions = false }).Policy
            ?? throw new InvalidOperationException("bench policy invalid");
        var hosts = Enumerable.Range(0, keys).Select(i => $"h{i % 50}.example.com").ToArray();
        var clients = Enumerable.Range(0, keys).Select(i => $"agent-{i / 50}").ToArray();

        Console.WriteLine($"budgets: {keys} client x host keys, {threads} threads, {seconds} s per run");
        var local = new BudgetLedger(100_000);
        Report("no budgets in the policy (baseline)", Run(null, policy, hosts, clients, threads, seconds, budgets: false));
        Report("budgets, local ledger", Run(local, policy, hosts, clients, threads, seconds, budgets: true));

        if (args.Contains("--no-postgres") || !PostgresServer.Available)
        {
            Console.WriteLine("(PostgreSQL not measured: --no-postgres or not installed)");
            return 0;
        }

        await using var server = await PostgresServer.StartAsync();
        foreach (var syncMs in new[] { 250, 50 })
        {
            var shared = new BudgetLedger(100_000);
            await using var sync = await BudgetSync.StartAsync(server.Url, shared, TimeSpan.FromMilliseconds(syncMs), NullLogger.Instance, CancellationToken.None);
            var before = sync.Syncs;
            var result = Run(shared, policy, hosts, clients, threads, seconds, budgets: true);
            Report($"budgets, PostgreSQL store, sync every {syncMs} ms ({sync.Syncs - before} syncs)", result);
            var probe = Stopwatch.StartNew();
            await sync.SyncOnceAsync(CancellationToken.None);
            Console.WriteLine($"    one sync of {shared.Count} meters: {probe.Elapsed.TotalMilliseconds:F1} ms (off the request path)");
        }

        return 0;
    }

    private static (long Operations, TimeSpan Elapsed, double P99Ns, TimeSpan Cpu) Run(
        BudgetLedger? ledger, CompiledPolicy policy, string[] hosts, string[] clients, int threads, int seconds, bool budgets)
    {
        var stop = DateTime.UtcNow.AddSeconds(seconds);
        long total = 0;
        var samples = new List<double>();
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, threads).Select(t => Task.Run(async () =>
        {
            var local = new List<double>(1 << 16);
            long n = 0;
            var i = t * 7919;
            while ((n & 1023) != 0 || DateTime.UtcNow < stop)
            {
                var k = i++ % hosts.Length;
                var start = Stopwatch.GetTimestamp();
                if (budgets)
                {
                    var applicable = policy.BudgetsFor(clients[k], hosts[k], "api");
                    var list = new List<(BudgetSpec, string)>(applicable.Count);
                    foreach (var b in applicable)
                    {
                        list.Add((b, b.KeyFor(clients[k], hosts[k], "api")));
                    }

                    // As the stage does: within the lease at once, one store round trip when a lease is spent.
                    await ledger!.ChargeAsync(list, 512);
                }
                else
                {
                    _ = policy.Budgets.Count;
                }

                if ((n & 255) == 0)
                {
                    local.Add(Stopwatch.GetElapsedTime(start).TotalNanoseconds);
                }

                n++;
            }

            Interlocked.Add(ref total, n);
            lock (samples)
            {
                samples.AddRange(local);
            }
        })).ToArray();
        Task.WaitAll(workers);
        var elapsed = clock.Elapsed;
        process.Refresh();
        var used = process.TotalProcessorTime - cpu;
        samples.Sort();
        return (total, elapsed, samples.Count == 0 ? 0 : samples[(int)(samples.Count * 0.99)], used);
    }

    private static void Report(string name, (long Operations, TimeSpan Elapsed, double P99Ns, TimeSpan Cpu) r) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {name}: {r.Operations / r.Elapsed.TotalSeconds / 1e6:F2} M checks/s, {r.Cpu.TotalNanoseconds / r.Operations:F0} ns CPU per check (whole process), p99 {r.P99Ns / 1000:F1} µs wall"));

    internal static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
