using System.Diagnostics;
using System.Globalization;
using System.Text;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Bench.Micro;

/// <summary>
/// Policy size (issue: decision cost flat from 10 to 10,000 rules and 50,000 host patterns; load of a 10,000-rule
/// policy within 1 s). Generates policies with exact, wildcard, CIDR and path-glob rules, then times loading and
/// deciding a fixed mix of requests (hits early, late, on wildcards, on addresses, and misses). Prints one line per size.
/// </summary>
internal static class PolicyScaleProbe
{
    public static void Run()
    {
        Console.WriteLine("| rules | host patterns | policy KiB | load ms | decide ns (median of 7) | vs 10 rules |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        double? baseline = null;
        foreach (var rules in new[] { 10, 100, 1_000, 10_000 })
        {
            var patternsPerRule = rules == 10_000 ? 5 : 2; // 10,000 rules x 5 = 50,000 host patterns
            var yaml = Generate(rules, patternsPerRule);
            var load = Stopwatch.StartNew();
            var result = PolicyLoader.LoadText(yaml, "scale.yaml");
            load.Stop();
            if (!result.Success)
            {
                throw new InvalidOperationException(string.Join('\n', result.Diagnostics.Take(5)));
            }

            var policy = result.Policy!;
            var inputs = Inputs(rules);
            var perDecision = Measure(policy, inputs);
            baseline ??= perDecision;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {rules:N0} | {rules * patternsPerRule:N0} | {yaml.Length / 1024:N0} | {load.Elapsed.TotalMilliseconds:F0} | {perDecision:F0} | {perDecision / baseline:F2}x |"));
        }
    }

    /// <summary>
    /// Loads the 10,000-rule policy (50,000 host patterns) <paramref name="count"/> times and prints, per load, the wall
    /// time, the loading thread's CPU time and the whole process's CPU time (garbage collection included); the first
    /// load includes the JIT of the loader. The median of the later loads is the steady figure (what a reload costs in
    /// a running proxy).
    /// </summary>
    public static void Load(int count)
    {
        var yaml = Generate(10_000, 5);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"10,000 rules, 50,000 host patterns, {yaml.Length / 1024:N0} KiB of YAML, {count} loads"));
        Console.WriteLine("| load | wall ms | thread CPU ms | process CPU ms | allocated MiB | gen0/1/2 |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---|");
        var thread = new List<double>();
        var process = new List<double>();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        for (var i = 0; i < count; i++)
        {
            var gc = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
            self.Refresh();
            var cpu0 = self.TotalProcessorTime;
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var t0 = ProxyGuard.Inspection.Tests.Complexity.ThreadCpu.NowNanoseconds();
            var watch = Stopwatch.StartNew();
            var result = PolicyLoader.LoadText(yaml, "scale.yaml");
            watch.Stop();
            var threadMs = (ProxyGuard.Inspection.Tests.Complexity.ThreadCpu.NowNanoseconds() - t0) / 1e6;
            var allocatedMiB = (GC.GetAllocatedBytesForCurrentThread() - allocated) / 1048576.0;
            self.Refresh();
            var processMs = (self.TotalProcessorTime - cpu0).TotalMilliseconds;
            if (!result.Success)
            {
                throw new InvalidOperationException(string.Join('\n', result.Diagnostics.Take(5)));
            }

            if (i > 0)
            {
                thread.Add(threadMs);
                process.Add(processMs);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {(i == 0 ? "1 (cold)" : (i + 1).ToString(CultureInfo.InvariantCulture))} | {watch.Elapsed.TotalMilliseconds:F0} | {threadMs:F0} | {processMs:F0} | {allocatedMiB:F0} | {GC.CollectionCount(0) - gc.Item1}/{GC.CollectionCount(1) - gc.Item2}/{GC.CollectionCount(2) - gc.Item3} |"));
        }

        if (thread.Count > 0)
        {
            thread.Sort();
            process.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"warm median: thread CPU {thread[thread.Count / 2]:F0} ms, process CPU {process[process.Count / 2]:F0} ms"));
        }

        // The floor set by the YAML library: the same text through YamlDotNet's parser alone (events, no tree).
        for (var i = 0; i < 3; i++)
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var t0 = ProxyGuard.Inspection.Tests.Complexity.ThreadCpu.NowNanoseconds();
            var parser = new YamlDotNet.Core.Parser(new System.IO.StringReader(yaml));
            var events = 0;
            while (parser.MoveNext())
            {
                events++;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"YAML parser alone: {events:N0} events, thread CPU {(ProxyGuard.Inspection.Tests.Complexity.ThreadCpu.NowNanoseconds() - t0) / 1e6:F0} ms, allocated {(GC.GetAllocatedBytesForCurrentThread() - allocated) / 1048576.0:F0} MiB"));
        }
    }

    private static string Generate(int rules, int patternsPerRule)
    {
        var yaml = new StringBuilder("version: 1\ndefault: deny\nrules:\n");
        for (var i = 0; i < rules; i++)
        {
            yaml.Append("  - name: r").Append(i).Append("\n    hosts: [");
            for (var p = 0; p < patternsPerRule; p++)
            {
                yaml.Append(p == 0 ? string.Empty : ", ");
                yaml.Append((p % 3) switch
                {
                    0 => $"api{i}-{p}.example.com",
                    1 => $"\"*.svc{i}-{p}.example.net\"",
                    _ => $"\"10.{i / 256 % 256}.{i % 256}.{p}/32\"",
                });
            }

            yaml.Append("]\n    methods: [GET, POST]\n    paths: [\"/v1/repos/**\", \"/v1/items/*\"]\n    action: ")
                .Append(i % 10 == 9 ? "deny" : "allow").Append('\n');
        }

        return yaml.ToString();
    }

    private static DecisionInput[] Inputs(int rules) =>
    [
        new(null, "https", "api0-0.example.com", 443, "GET", "/v1/repos/a/b"),
        new(null, "https", $"api{rules - 2}-0.example.com", 443, "GET", "/v1/repos/a/b"),
        new(null, "https", $"x.svc{rules / 2}-1.example.net", 443, "POST", "/v1/items/7"),
        new(null, "https", $"10.{(rules - 1) / 256 % 256}.{(rules - 1) % 256}.2", 443, "GET", "/v1/items/1"),
        new(null, "https", "unknown.example.org", 443, "GET", "/"),
        new(null, "https", $"api{rules / 3}-0.example.com", 443, "DELETE", "/v1/repos/a"),
    ];

    private static double Measure(CompiledPolicy policy, DecisionInput[] inputs)
    {
        const int Rounds = 7;
        const int Iterations = 20_000;
        var samples = new double[Rounds];
        for (var w = 0; w < 300_000; w++)
        {
            PolicyDecider.Decide(policy, inputs[w % inputs.Length]);
        }

        for (var round = 0; round < Rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < Iterations; i++)
            {
                PolicyDecider.Decide(policy, inputs[i % inputs.Length]);
            }

            samples[round] = watch.Elapsed.TotalNanoseconds / Iterations;
        }

        Array.Sort(samples);
        return samples[Rounds / 2];
    }
}
