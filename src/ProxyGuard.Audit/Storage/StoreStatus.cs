namespace ProxyGuard.Audit.Storage;

/// <summary>Counters and health shared by the store's producers, its writer and its readers.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage(
    "Design",
    "CA1001:Types that own disposable fields should be disposable",
    Justification = "The failure signal is read by producers racing with disposal; a token source without timers needs no disposal.")]
internal sealed class StoreStatus
{
    private readonly Lock _gate = new();
    private long _written;
    private long _dropped;
    private long _compacted;
    private long _writerCacheBytes;
    private long _lastId;
    private long _shipped = long.MaxValue;
    private volatile bool _failing;
    private volatile bool _stopped;
    private volatile bool _outboxFull;
    private volatile string? _lastError;
    private volatile CancellationTokenSource _failureSignal = new();

    public long Written => Interlocked.Read(ref _written);

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Compacted => Interlocked.Read(ref _compacted);

    /// <summary>
    /// True while the writer cannot commit (it keeps retrying the held batch), after it stopped, or while the outbox of
    /// the central store holds more unshipped events than its bound.
    /// </summary>
    public bool Failing => _failing || _stopped || _outboxFull;

    /// <summary>The largest committed id.</summary>
    private long _checkpointsShipped;

    public long LastId
    {
        get => Interlocked.Read(ref _lastId);
        set => Interlocked.Exchange(ref _lastId, value);
    }

    /// <summary>
    /// Central store only: every id up to this one is in the central database (retention never deletes past it).
    /// <see cref="long.MaxValue"/> without a central store.
    /// </summary>
    public long Shipped
    {
        get => Interlocked.Read(ref _shipped);
        set => Interlocked.Exchange(ref _shipped, value);
    }

    /// <summary>Central store with checkpoints: every checkpoint up to this number is in the central database.</summary>
    public long CheckpointsShipped
    {
        get => Interlocked.Read(ref _checkpointsShipped);
        set => Interlocked.Exchange(ref _checkpointsShipped, value);
    }

    /// <summary>Central store only: the most committed events that may wait unshipped before the store refuses new ones.</summary>
    public long? MaxUnshipped { get; set; }

    /// <summary>Committed events not yet in the central database (0 without a central store).</summary>
    public long Unshipped => MaxUnshipped is null ? 0 : Math.Max(0, LastId - Shipped);

    public bool OutboxFull => _outboxFull;

    /// <summary>Re-evaluates the outbox bound after a commit or a shipped batch; a full outbox fails the store closed.</summary>
    public void UpdateOutbox()
    {
        if (MaxUnshipped is not long max)
        {
            return;
        }

        var unshipped = Unshipped;
        var full = unshipped > max;
        if (full == _outboxFull)
        {
            return;
        }

        CancellationTokenSource? cancel = null;
        lock (_gate)
        {
            if (full == _outboxFull)
            {
                return;
            }

            _outboxFull = full;
            if (full)
            {
                _lastError = $"the outbox of the central event store is full: {unshipped} events are not shipped yet (bound {max})";
                cancel = _failing ? null : _failureSignal;
            }
            else if (!_failing && !_stopped)
            {
                _failureSignal = new CancellationTokenSource();
            }
        }

        cancel?.Cancel();
    }

    public string? LastError => _lastError;

    /// <summary>Cancelled when the store starts failing, so producers waiting for queue room fail closed.</summary>
    public CancellationToken FailureToken => _failureSignal.Token;

    /// <summary>Test hook: an exception returned here is thrown by the writer just before a commit.</summary>
    public Func<Exception?>? FaultInjector { get; set; }

    /// <summary>Test hook: applied as <c>PRAGMA max_page_count</c> to the writer's connection (simulates a full disk).</summary>
    public long? MaxPageCount { get; set; }

    /// <summary>Bytes held by the writer connection's page cache after its last commit (SQLITE_DBSTATUS_CACHE_USED).</summary>
    public long WriterCacheBytes
    {
        get => Interlocked.Read(ref _writerCacheBytes);
        set => Interlocked.Exchange(ref _writerCacheBytes, value);
    }

    public void AddWritten(long count) => Interlocked.Add(ref _written, count);

    public void AddDropped(long count) => Interlocked.Add(ref _dropped, count);

    public void AddCompacted(long count) => Interlocked.Add(ref _compacted, count);

    public void MarkFailing(string error)
    {
        _lastError = error;
        lock (_gate)
        {
            if (_failing)
            {
                return;
            }

            _failing = true;
            if (_outboxFull)
            {
                return;
            }
        }

        _failureSignal.Cancel();
    }

    public void MarkHealthy()
    {
        lock (_gate)
        {
            if (!_failing)
            {
                return;
            }

            _failing = false;
            if (!_outboxFull)
            {
                _failureSignal = new CancellationTokenSource();
            }
        }
    }

    public void MarkStopped(string error)
    {
        _stopped = true;
        MarkFailing(error);
    }

    public void NoteError(string error) => _lastError = error;
}
