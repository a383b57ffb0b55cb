using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ProxyGuard.Inspection.Tests.Complexity;

/// <summary>
/// CPU time of the calling thread (Linux <c>CLOCK_THREAD_CPUTIME_ID</c>), so other work on a shared machine does not
/// count; elsewhere it falls back to wall-clock time.
/// </summary>
public static partial class ThreadCpu
{
    private const int ClockThreadCpuTime = 3;

    /// <summary>Thread CPU time in nanoseconds (monotonic within one thread).</summary>
    public static long NowNanoseconds()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTime, out var ts) == 0)
        {
            return (ts.Seconds * 1_000_000_000L) + ts.Nanoseconds;
        }

        return (long)(Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency));
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);
}
