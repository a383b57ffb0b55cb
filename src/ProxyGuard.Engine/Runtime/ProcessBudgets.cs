using ProxyGuard.Inspection.Budgets;

namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// The process-wide budgets (issue 15, class 2): <c>max_body</c> bounds one request, these bound all of them together.
/// Past a budget new work is refused with <c>503 over-capacity</c>; work already admitted goes on.
/// </summary>
internal sealed class ProcessBudgets : IDisposable
{
    public const string BodiesName = "buffered-bodies";
    public const string DecodingName = "decompression";
    public const string ScansName = "concurrent-scans";
    public const string WebSocketsName = "websocket-buffers";

    public ProcessBudgets(ProxyLimits limits)
    {
        Bodies = new ResourceBudget(BodiesName, limits.MaxBufferedBodyBytes);
        Decoding = new ResourceBudget(DecodingName, limits.MaxDecompressedBytes);
        WebSockets = new ResourceBudget(WebSocketsName, limits.MaxWebSocketBufferedBytes);
        Scans = new ScanGate(limits.MaxConcurrentScans, limits.ScanQueueTimeout);
    }

    /// <summary>Request-body bytes buffered for scanning.</summary>
    public ResourceBudget Bodies { get; }

    /// <summary>Decompression output of request scans and response decoders.</summary>
    public ResourceBudget Decoding { get; }

    /// <summary>WebSocket message bytes held for inspection (past it the connection closes with 1013).</summary>
    public ResourceBudget WebSockets { get; }

    /// <summary>Content scans running at once.</summary>
    public ScanGate Scans { get; }

    public void Dispose() => Scans.Dispose();
}

/// <summary>
/// At most <c>slots</c> content scans run at once; a request waits for a slot at most <c>wait</c>, and at most
/// <c>8 x slots</c> requests wait (past either, null: refuse). Scans are CPU-bound with a wall-clock budget each, so
/// running many more than there are cores would only make all of them miss it.
/// </summary>
internal sealed class ScanGate : IDisposable
{
    private readonly SemaphoreSlim _slots;
    private readonly TimeSpan _wait;
    private readonly int _maxWaiting;
    private int _waiting;
    private long _refusals;

    public ScanGate(int slots, TimeSpan wait)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        _slots = new SemaphoreSlim(slots, slots);
        Capacity = slots;
        _wait = wait;
        _maxWaiting = 8 * slots;
    }

    public int Capacity { get; }

    public int InUse => Capacity - _slots.CurrentCount;

    public long Refusals => Volatile.Read(ref _refusals);

    /// <summary>A slot (dispose to give it back), or null when none came free in time or too many already wait.</summary>
    public async ValueTask<IDisposable?> EnterAsync(CancellationToken ct)
    {
        if (_slots.Wait(0, CancellationToken.None))
        {
            return new Slot(_slots);
        }

        if (Interlocked.Increment(ref _waiting) > _maxWaiting)
        {
            Interlocked.Decrement(ref _waiting);
            Interlocked.Increment(ref _refusals);
            return null;
        }

        try
        {
            if (await _slots.WaitAsync(_wait, ct))
            {
                return new Slot(_slots);
            }

            Interlocked.Increment(ref _refusals);
            return null;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    public void Dispose() => _slots.Dispose();

    private sealed class Slot(SemaphoreSlim slots) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                slots.Release();
            }
        }
    }
}
