using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ProxyGuard.Secrets.Tests.Support;

/// <summary>
/// CPU time of the calling thread (Linux <c>CLOCK_THREAD_CPUTIME_ID</c>), so work elsewhere on a shared machine does not
/// count in the complexity bounds; wall-clock time elsewhere.
/// </summary>
internal static class ThreadCpuTime
{
    private const int ClockThreadCpuTime = 3;

    /// <summary>The CPU time <paramref name="action"/> took on this thread.</summary>
    public static TimeSpan Of(Action action)
    {
        var watch = Stopwatch.StartNew();
        var before = Nanoseconds();
        action();
        return before is { } start && Nanoseconds() is { } end ? TimeSpan.FromTicks((end - start) / 100) : watch.Elapsed;
    }

    /// <summary>
    /// The least CPU time of each of two actions over <paramref name="rounds"/> rounds, run alternately (after one
    /// warm-up of each), so that a slow moment of the machine, a collection or a tier-up affects both alike.
    /// </summary>
    public static (TimeSpan Small, TimeSpan Large) BestOfPairs(Action small, Action large, int rounds = 9)
    {
        small();
        large();
        var (bestSmall, bestLarge) = (TimeSpan.MaxValue, TimeSpan.MaxValue);
        for (var i = 0; i < rounds; i++)
        {
            var a = Of(small);
            var b = Of(large);
            bestSmall = a < bestSmall ? a : bestSmall;
            bestLarge = b < bestLarge ? b : bestLarge;
        }

        return (bestSmall, bestLarge);
    }

    public static long? Nanoseconds() =>
        OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTime, out var ts) == 0 ? (ts.Seconds * 1_000_000_000L) + ts.Nanoseconds : null;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
#pragma warning disable SYSLIB1054 // test-only P/Invoke
    private static extern int ClockGetTime(int clock, out TimeSpec time);
#pragma warning restore SYSLIB1054
}
