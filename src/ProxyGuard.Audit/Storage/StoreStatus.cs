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
    private volatile bool _failing;
    private volatile bool _stopped;
    private volatile string? _lastError;
    private volatile CancellationTokenSource _failureSignal = new();

    public long Written => Interlocked.Read(ref _written);

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Compacted => Interlocked.Read(ref _compacted);

    /// <summary>True while the writer cannot commit (it keeps retrying the held batch) or after it stopped.</summary>
    public bool Failing => _failing || _stopped;

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

            _failureSignal = new CancellationTokenSource();
            _failing = false;
        }
    }

    public void MarkStopped(string error)
    {
        _stopped = true;
        MarkFailing(error);
    }

    public void NoteError(string error) => _lastError = error;
}
