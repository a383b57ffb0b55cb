using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Gives memory back after a burst. The GC collects when allocations call for it, so when a burst of large bodies
/// ends and the proxy goes quiet, nothing would run to return their memory to the system. Once a second this looks at
/// the byte budgets: after a peak of at least <see cref="Threshold"/> that has mostly drained (what is held now is at
/// most an eighth of it), it runs one compacting collection that decommits the freed memory, at most every
/// <see cref="MinInterval"/>.
/// </summary>
internal sealed class MemoryTrimmer : IDisposable
{
    public const long Threshold = 16L * 1024 * 1024;
    private static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(5);

    private readonly ProcessBudgets _budgets;
    private readonly ILogger _logger;
    private readonly Timer _timer;
    private long _pendingPeak;
    private long _lastTrim;
    private int _running;

    public MemoryTrimmer(ProcessBudgets budgets, ILogger logger)
    {
        _budgets = budgets;
        _logger = logger;
        _timer = new Timer(_ =>
        {
            if (Interlocked.Exchange(ref _running, 1) == 0)
            {
                try
                {
                    Tick();
                }
                finally
                {
                    Volatile.Write(ref _running, 0);
                }
            }
        }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Trims now if a large enough peak has drained; true when it did.</summary>
    internal bool Tick()
    {
        _pendingPeak = Math.Max(_pendingPeak, _budgets.Bodies.TakePeak() + _budgets.Decoding.TakePeak());
        var inUse = _budgets.Bodies.InUse + _budgets.Decoding.InUse;
        if (_pendingPeak < Threshold || inUse > _pendingPeak / 8
            || (_lastTrim != 0 && Stopwatch.GetElapsedTime(_lastTrim) < MinInterval))
        {
            return false;
        }

        var started = Stopwatch.GetTimestamp();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        _lastTrim = Stopwatch.GetTimestamp();
        EngineLog.MemoryTrimmed(_logger, inUse >> 20, _pendingPeak >> 20, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        _pendingPeak = 0;
        return true;
    }

    public void Dispose() => _timer.Dispose();
}
