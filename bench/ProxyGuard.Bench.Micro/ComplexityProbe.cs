using ProxyGuard.Inspection;
using ProxyGuard.Inspection.Tests.Complexity;

namespace ProxyGuard.Bench.Micro;

/// <summary>
/// <c>-- complexity [name-filter]</c>: every adversarial shape of the complexity tests at 64 KiB, 256 KiB and 1 MiB,
/// on the byte path and the <c>char</c> path; prints thread-CPU ns/byte (fastest of 3) per size and the time ratio
/// per 4x input (linear = 4, limit 5).
/// </summary>
internal static class ComplexityProbe
{
    private static readonly int[] _sizes = [64 * 1024, 256 * 1024, 1024 * 1024];

    public static void Run(string? filter)
    {
        var scanners = new (string Path, ContentScanner Scanner)[]
        {
            ("bytes", ComplexityShapes.ByteScanner()),
            ("chars", ComplexityShapes.CharScanner()),
        };
        Console.WriteLine("| shape | path | ns/B 64 KiB | ns/B 256 KiB | ns/B 1 MiB | 256K/64K | 1M/256K |");
        Console.WriteLine("|-------|------|------------:|-------------:|-----------:|---------:|--------:|");
        var worst = 0.0;
        foreach (var shape in ComplexityShapes.All)
        {
            if (filter is not null && !shape.Name.Contains(filter, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var (path, scanner) in scanners)
            {
                var times = new double[_sizes.Length];
                for (var s = 0; s < _sizes.Length; s++)
                {
                    var scan = shape.Build(_sizes[s]);
                    scan(scanner);
                    times[s] = double.MaxValue;
                    for (var r = 0; r < 3; r++)
                    {
                        var start = ThreadCpu.NowNanoseconds();
                        GC.KeepAlive(scan(scanner));
                        times[s] = Math.Min(times[s], ThreadCpu.NowNanoseconds() - start);
                    }
                }

                var r1 = times[1] / Math.Max(times[0], 1);
                var r2 = times[2] / Math.Max(times[1], 1);
                worst = Math.Max(worst, Math.Max(r1, r2));
                Console.WriteLine($"| {shape.Name} | {path} | {times[0] / _sizes[0]:F2} | {times[1] / _sizes[1]:F2} | {times[2] / _sizes[2]:F2} | {r1:F2} | {r2:F2} |");
            }
        }

        Console.WriteLine($"worst ratio per 4x input: {worst:F2} (linear = 4, limit 5)");
    }
}
