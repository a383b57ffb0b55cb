using Xunit.Abstractions;

namespace ProxyGuard.Inspection.Tests.Complexity;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ComplexityCollection
{
    public const string Name = "complexity (CPU-timed, not parallel)";
}

/// <summary>
/// Every decoder and escape path scales linearly: for each adversarial shape, the thread CPU time of one scan at 4x
/// the input size is at most 5x (16 KiB vs 64 KiB, and 64 KiB vs 256 KiB). Each size is timed several times,
/// interleaved, and the fastest run counts, which tames a loaded machine; quadratic code gives ~16x.
/// </summary>
[Collection(ComplexityCollection.Name)]
public sealed class ScalingTests(ITestOutputHelper output)
{
    private const double MaxRatio = 5.0;

    public static TheoryData<string> Shapes()
    {
        var data = new TheoryData<string>();
        foreach (var shape in ComplexityShapes.All)
        {
            data.Add(shape.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ByteScannerScalesLinearly(string shape) => AssertLinear(shape, ComplexityShapes.ByteScanner());

    [Theory]
    [MemberData(nameof(Shapes))]
    public void CharScannerScalesLinearly(string shape) => AssertLinear(shape, ComplexityShapes.CharScanner());

    [Fact]
    public void ThePercentShapeIsFastInAbsoluteTerms()
    {
        // 256 KiB of %41 took about a minute of CPU at 2f0756f; linear code needs milliseconds. 2 s leaves room for a
        // loaded, instrumented CI machine.
        var scan = ComplexityShapes.Find("percent %41").Build(256 * 1024);
        var scanner = ComplexityShapes.ByteScanner();
        scan(scanner);
        var nanoseconds = Measure(scan, scanner, 1, 3);
        output.WriteLine($"256 KiB of %41: {nanoseconds / 1e6:F1} ms CPU");
        Assert.True(nanoseconds < 2e9, $"256 KiB of %41 took {nanoseconds / 1e6:F0} ms of CPU");
    }

    [Fact]
    public void TheAmpersandShapeIsFastInAbsoluteTerms()
    {
        // fuzz/regressions/scan-slow/ampersands: 1 MiB of '&' took about 240 ms of CPU in a Debug build (the real-value
        // matcher decoded at every '&'); skipping runs of '&' makes it about 5 ms. 20 ms leaves room for a loaded CI machine.
        var scan = ComplexityShapes.Find("ampersands (fuzz: 16 KiB of &)").Build(1024 * 1024);
        var scanner = ComplexityShapes.ByteScanner();
        scan(scanner);
        var nanoseconds = Measure(scan, scanner, 1, 3);
        output.WriteLine($"1 MiB of &: {nanoseconds / 1e6:F1} ms CPU");
        Assert.True(nanoseconds < 20e6, $"1 MiB of & took {nanoseconds / 1e6:F1} ms of CPU (limit 20)");
    }

    private void AssertLinear(string name, ContentScanner scanner)
    {
        var shape = ComplexityShapes.Find(name);
        var ratios = new List<string>();
        foreach (var (small, large) in new[] { (16 * 1024, 64 * 1024), (64 * 1024, 256 * 1024) })
        {
            var ratio = Ratio(shape, scanner, small, large, out var smallNs, out var largeNs);
            if (ratio > MaxRatio)
            {
                // A second, longer measurement before failing: one unlucky preemption must not fail the build.
                ratio = Math.Min(ratio, Ratio(shape, scanner, small, large, out smallNs, out largeNs, repeats: 15));
            }

            ratios.Add($"{small / 1024} KiB {smallNs / 1e3:F0} us -> {large / 1024} KiB {largeNs / 1e3:F0} us: {ratio:F2}x");
            output.WriteLine($"{name}: {ratios[^1]}");
            Assert.True(ratio <= MaxRatio, $"{name}: {string.Join("; ", ratios)} (limit {MaxRatio}x per 4x input)");
        }
    }

    private static double Ratio(ComplexityShapes.Shape shape, ContentScanner scanner, int small, int large, out double smallNs, out double largeNs, int repeats = 5)
    {
        var smallScan = shape.Build(small);
        var largeScan = shape.Build(large);

        // Warm-up (JIT tiers, pools) at both sizes, then interleave: the fastest of each is the least disturbed.
        smallScan(scanner);
        largeScan(scanner);
        smallNs = double.MaxValue;
        largeNs = double.MaxValue;
        for (var r = 0; r < repeats; r++)
        {
            // The small input is timed over four scans, so both measurements cover the same number of bytes and
            // last long enough for the clock.
            smallNs = Math.Min(smallNs, Measure(smallScan, scanner, 4, 1) / 4.0);
            largeNs = Math.Min(largeNs, Measure(largeScan, scanner, 1, 1));
        }

        // A floor of 2 us per scan: below it the clock, not the scanner, sets the ratio.
        return Math.Max(largeNs, 2_000) / Math.Max(smallNs, 2_000);
    }

    private static long Measure(ComplexityShapes.Scan scan, ContentScanner scanner, int scans, int repeats)
    {
        var best = long.MaxValue;
        for (var r = 0; r < repeats; r++)
        {
            var start = ThreadCpu.NowNanoseconds();
            for (var i = 0; i < scans; i++)
            {
                GC.KeepAlive(scan(scanner));
            }

            best = Math.Min(best, ThreadCpu.NowNanoseconds() - start);
        }

        return best;
    }
}
