// Over 400 lines: the store's public surface (reserve, write, wait, flush, query, compact, dispose) shares one queue,
// its slots and the failure state; each method is short, and splitting them would spread that shared state.
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using ProxyGuard.Audit.Chain;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit;

/// <summary>
/// Durable audit event store: an embedded SQLite database (<c>events.db</c>, WAL, <c>synchronous=NORMAL</c>)
/// in the data directory, fed through a bounded queue by one background writer that commits in batches.
/// Allow events use <see cref="TryWrite"/> (dropped and counted when the queue is full or the store fails);
/// deny events use <see cref="WriteAsync"/> (waits for room, throws when the store fails, so the caller fails
/// the request closed). The last eighth of the queue is reserved for deny events.
/// </summary>
public sealed class EventStore : IAsyncDisposable
{
    private readonly Channel<QueueItem> _channel;
    private readonly EventWriter _writer;
    private readonly EventReader _reader;
    private readonly StoreStatus _status;
    private readonly EventStoreOptions _options;
    private readonly int _allowLimit;
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly CheckpointSigner? _signer;
    private Task _compactionLoop = Task.CompletedTask;
    private Task _checkpointLoop = Task.CompletedTask;
    private int _disposed;

    private EventStore(string databasePath, EventStoreOptions options, CheckpointSigner? signer)
    {
        _options = options;
        _signer = signer;
        DatabasePath = databasePath;
        _status = new StoreStatus { MaxUnshipped = options.MaxUnshipped };
        // Every queued event holds one of QueueCapacity slots from the moment it is enqueued (or reserved) until the
        // writer takes it: the queue is bounded by the slots, and a reserved slot always finds room.
        _channel = Channel.CreateUnbounded<QueueItem>(new UnboundedChannelOptions
        {
            SingleReader = false, // the multi-reader implementation can count (QueueDepth); only the writer reads
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
        _slots = new SemaphoreSlim(options.QueueCapacity, options.QueueCapacity);
        _allowLimit = options.QueueCapacity / 8;
        var writeConnection = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            Cache = SqliteCacheMode.Private,
        }.ToString();
        var readConnection = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = true,
            Cache = SqliteCacheMode.Private,
            DefaultTimeout = 10,
        }.ToString();
        _writer = new EventWriter(writeConnection, _channel.Reader, options, _status, () => _slots.Release(), signer);
        _reader = new EventReader(readConnection);
    }

    /// <summary>Full path of the SQLite database file.</summary>
    public string DatabasePath { get; }

    /// <summary>Entries waiting in the queue (events and control markers).</summary>
    public long QueueDepth => _channel.Reader.Count;

    /// <summary>Allow events not stored: refused by <see cref="TryWrite"/> or lost when a failing store was disposed.</summary>
    public long DroppedEvents => _status.Dropped;

    /// <summary>Events committed since the store opened.</summary>
    public long WrittenEvents => _status.Written;

    /// <summary>Events deleted by retention since the store opened.</summary>
    public long CompactedEvents => _status.Compacted;

    /// <summary>The largest committed id.</summary>
    public long LastId => _status.LastId;

    /// <summary>With a central store: committed events not yet shipped to it.</summary>
    public long UnshippedEvents => _status.Unshipped;

    /// <summary>With a central store: every id up to this one is shipped.</summary>
    public long ShippedThrough => _status.MaxUnshipped is null ? 0 : _status.Shipped;

    /// <summary>With a central store: true while the outbox is over its bound (new events are refused).</summary>
    public bool OutboxFull => _status.OutboxFull;

    internal EventReader Reader => _reader;

    /// <summary>The checkpoint signer, when checkpoints are on.</summary>
    public CheckpointSigner? Signer => _signer;

    /// <summary>Central store: the shipper confirmed every checkpoint up to number <paramref name="n"/>.</summary>
    internal void MarkCheckpointsShipped(long n)
    {
        if (n > _status.CheckpointsShipped)
        {
            _status.CheckpointsShipped = n;
            RecordShipped();
        }
    }

    /// <summary>Central store: the shipper confirmed every id up to <paramref name="id"/> (retention may delete them now).</summary>
    internal void MarkShipped(long id)
    {
        if (_status.MaxUnshipped is not null && id > _status.Shipped)
        {
            _status.Shipped = id;
            _status.UpdateOutbox();
            RecordShipped();
        }
    }

    /// <summary>Asks the writer to persist the shipped markers now (one small commit per shipping round), not with the next event.</summary>
    private void RecordShipped()
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            Post(new QueueItem(QueueItemKind.Shipped, null, null));
        }
    }

    /// <summary>False while commits fail (the writer retries) and after disposal.</summary>
    public bool Healthy => !_status.Failing && Volatile.Read(ref _disposed) == 0;

    /// <summary>One-line description of the last write or compaction failure, if any.</summary>
    public string? LastError => _status.LastError;

    /// <summary>Test hook: an exception returned here is thrown by the writer just before it commits a batch.</summary>
    internal Func<Exception?>? FaultInjector
    {
        get => _status.FaultInjector;
        set => _status.FaultInjector = value;
    }

    /// <summary>Test hook: caps the database at this many pages on the writer's next (re)open (a full disk).</summary>
    internal long? MaxPageCount
    {
        get => _status.MaxPageCount;
        set => _status.MaxPageCount = value;
    }

    /// <summary>Bytes in the writer connection's SQLite page cache after its last commit (bounded by the writer's cache_size).</summary>
    internal long WriterCacheBytes => _status.WriterCacheBytes;

    /// <summary>
    /// Opens (creating when needed) <c>events.db</c> in <paramref name="dataDirectory"/>, with WAL, the schema
    /// and the filter indexes, and starts the writer and the retention compaction.
    /// </summary>
    /// <exception cref="EventStoreException">The directory or database cannot be created, opened or written.</exception>
    public static EventStore Open(string dataDirectory, EventStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        options ??= new EventStoreOptions();
        Validate(options);
        string directory;
        try
        {
            directory = Path.GetFullPath(dataDirectory);
            if (OperatingSystem.IsWindows() || Directory.Exists(directory))
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new EventStoreException($"cannot create data directory '{dataDirectory}': {EventWriter.OneLine(ex)}", ex);
        }

        var path = Path.Combine(directory, EventSchema.FileName);
        try
        {
            MakePrivate(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new EventStoreException($"cannot open event database '{path}': {EventWriter.OneLine(ex)}", ex);
        }

        CheckpointSigner? signer = null;
        if (options.Checkpoints is { } checkpoints)
        {
            string replicaId;
            try
            {
                replicaId = Central.CentralConnection.ReplicaId(directory, checkpoints.ReplicaId);
            }
            catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException)
            {
                throw new EventStoreException("checkpoints: " + EventWriter.OneLine(ex), ex);
            }

            signer = CheckpointSigner.Load(checkpoints.KeyFile ?? Path.Combine(directory, CheckpointSigner.DefaultFileName), replicaId, create: true);
        }

        var store = new EventStore(path, options, signer);
        try
        {
            store._writer.Open();
        }
        catch (Exception ex) when (ex is SqliteException or EventStoreException or IOException or UnauthorizedAccessException)
        {
            store._writer.Dispose();
            store._reader.Dispose();
            signer?.Dispose();
            throw new EventStoreException($"cannot open event database '{path}': {EventWriter.OneLine(ex)}", ex);
        }

        store._writer.Start();
        if (RetentionCompactor.HasRetention(options))
        {
            store._compactionLoop = store.RunCompactionLoopAsync();
        }

        if (signer is not null)
        {
            store._checkpointLoop = store.RunCheckpointLoopAsync(options.Checkpoints!.Interval);
        }

        return store;
    }

    /// <summary>For allow events: enqueues without waiting; false (counted in <see cref="DroppedEvents"/>) when the queue is full or the store is failing.</summary>
    public bool TryWrite(AuditEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (!_status.Failing && Volatile.Read(ref _disposed) == 0 && _slots.CurrentCount > _allowLimit && _slots.Wait(0))
        {
            Enqueue(new QueueItem(QueueItemKind.Event, PreparedEvent.From(e, _options.TimeProvider), null));
            return true;
        }

        _status.AddDropped(1);
        return false;
    }

    /// <summary>
    /// Takes a queue slot for an event that will be written later (a request about to be forwarded): null when the
    /// store is failing, closed, or the queue is full — the caller then does not forward. The slot is kept until the
    /// event is written through the reservation, even if the store starts failing meanwhile (the writer holds and
    /// retries it), so a forwarded request never loses its event while the process lives.
    /// </summary>
    public EventReservation? TryReserve()
    {
        if (_status.Failing || Volatile.Read(ref _disposed) != 0 || !_slots.Wait(0))
        {
            return null;
        }

        return new EventReservation(this);
    }

    /// <summary>
    /// For deny and audit-deny events: enqueues, waiting for room (bounded by <paramref name="ct"/>).
    /// Throws <see cref="EventStoreException"/> when the store is failing or closed, so the caller fails closed.
    /// </summary>
    public ValueTask WriteAsync(AuditEvent e, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(e);
        ThrowIfUnavailable();
        var item = new QueueItem(QueueItemKind.Event, PreparedEvent.From(e, _options.TimeProvider), null);
        if (_slots.Wait(0, ct))
        {
            Enqueue(item);
            return ValueTask.CompletedTask;
        }

        return WaitForRoomAsync(item, ct);
    }

    /// <summary>
    /// Enqueues like <see cref="WriteAsync"/> and returns once the event's batch is committed: true when committed,
    /// false when the commit failed for good (the store was disposed while failing).
    /// </summary>
    public async ValueTask<bool> WriteAndWaitCommittedAsync(AuditEvent e, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(e);
        ThrowIfUnavailable();
        var completion = QueueItem.NewCompletion();
        var item = new QueueItem(QueueItemKind.Event, PreparedEvent.From(e, _options.TimeProvider), completion);
        if (_slots.Wait(0, ct))
        {
            Enqueue(item);
        }
        else
        {
            await WaitForRoomAsync(item, ct);
        }

        return await completion.Task.WaitAsync(ct);
    }

    /// <summary>Writes an event into a slot taken by <see cref="TryReserve"/>.</summary>
    internal void WriteReserved(AuditEvent e) =>
        Enqueue(new QueueItem(QueueItemKind.Event, PreparedEvent.From(e, _options.TimeProvider), null));

    /// <summary>Gives back a reserved slot that was not used.</summary>
    internal void ReleaseReserved() => _slots.Release();

    /// <summary>Puts an event that holds a slot into the queue; after close, the event is counted as dropped.</summary>
    private void Enqueue(QueueItem item)
    {
        if (!Post(item))
        {
            _slots.Release();
            _status.AddDropped(1);
            item.Completion?.TrySetResult(false);
        }
    }

    /// <summary>Queues an item and wakes the writer when it must not wait for the open batch; false once the queue is closed.</summary>
    private bool Post(QueueItem item)
    {
        if (!_channel.Writer.TryWrite(item))
        {
            return false;
        }

        _writer.Notify(urgent: item.Kind != QueueItemKind.Event || item.Completion is not null);
        return true;
    }

    /// <summary>Oldest first, ids greater than <see cref="EventQuery.After"/>, exact-match filters; safe under concurrent writes.</summary>
    public EventPage Query(EventQuery q)
    {
        ArgumentNullException.ThrowIfNull(q);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _reader.Query(q);
    }

    /// <summary>Returns once everything enqueued before the call is committed; throws <see cref="EventStoreException"/> if that cannot happen.</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        ThrowIfUnavailable();
        var completion = QueueItem.NewCompletion();
        if (!Post(new QueueItem(QueueItemKind.Flush, null, completion)))
        {
            throw Unavailable();
        }

        if (!await completion.Task.WaitAsync(ct))
        {
            throw Unavailable();
        }
    }

    /// <summary>
    /// Commits what is queued and, with checkpoints on, signs a checkpoint of the newest event if it has none yet;
    /// throws <see cref="EventStoreException"/> if that cannot happen.
    /// </summary>
    public async Task CheckpointAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ThrowIfUnavailable();
        var completion = QueueItem.NewCompletion();
        if (!Post(new QueueItem(QueueItemKind.Checkpoint, null, completion)) || !await completion.Task.WaitAsync(ct))
        {
            throw Unavailable();
        }
    }

    /// <summary>Runs a retention compaction now (it also runs every <see cref="EventStoreOptions.CompactionInterval"/>).</summary>
    public async Task CompactAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var completion = QueueItem.NewCompletion();
        if (!Post(new QueueItem(QueueItemKind.Compact, null, completion)))
        {
            throw new EventStoreException("the event store is closed");
        }

        if (!await completion.Task.WaitAsync(ct))
        {
            throw new EventStoreException(LastError ?? "audit compaction failed");
        }
    }

    /// <summary>Stops accepting events, commits everything queued (giving up after a retry if the store is failing) and closes.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _lifetime.Cancel();
        if (_signer is not null || _status.MaxUnshipped is not null)
        {
            // A last commit: the last checkpoint covers the last event, and the shipped cursors are written down
            // (the local store is the witness of what was shipped: events verify --data-dir).
            Post(new QueueItem(QueueItemKind.Checkpoint, null, null));
        }

        _channel.Writer.TryComplete();
        _writer.Notify(urgent: true);
        if (_status.Failing)
        {
            _writer.BeginStop();
        }

        var drained = await Task.WhenAny(_writer.Completion, Task.Delay(TimeSpan.FromSeconds(30))) == _writer.Completion;
        if (!drained)
        {
            _writer.BeginStop();
            await _writer.Completion;
        }

        try
        {
            await _compactionLoop;
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        try
        {
            await _checkpointLoop;
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        _writer.Dispose();
        _reader.Dispose();
        _signer?.Dispose();
        _lifetime.Dispose();
    }

    private async Task RunCompactionLoopAsync()
    {
        await Task.Yield();
        Post(new QueueItem(QueueItemKind.Compact, null, null));
        using var timer = new PeriodicTimer(_options.CompactionInterval, _options.TimeProvider);
        while (await timer.WaitForNextTickAsync(_lifetime.Token))
        {
            Post(new QueueItem(QueueItemKind.Compact, null, null));
        }
    }

    private async Task RunCheckpointLoopAsync(TimeSpan interval)
    {
        await Task.Yield();
        using var timer = new PeriodicTimer(interval, _options.TimeProvider);
        while (await timer.WaitForNextTickAsync(_lifetime.Token))
        {
            Post(new QueueItem(QueueItemKind.Checkpoint, null, null));
        }
    }

    private async ValueTask WaitForRoomAsync(QueueItem item, CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _status.FailureToken, _lifetime.Token);
        try
        {
            await _slots.WaitAsync(linked.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw Unavailable();
        }

        Enqueue(item);
        if (item.Completion?.Task is { IsCompleted: true } done && !done.Result)
        {
            throw Unavailable();
        }
    }

    private void ThrowIfUnavailable()
    {
        if (_status.Failing || Volatile.Read(ref _disposed) != 0)
        {
            throw Unavailable();
        }
    }

    private EventStoreException Unavailable() =>
        Volatile.Read(ref _disposed) != 0
            ? new EventStoreException("the event store is closed")
            : new EventStoreException("the event store is failing: " + (LastError ?? "unknown error"));

    /// <summary>
    /// The database holds what the sandbox did: create it 0600 before SQLite opens it (SQLite gives
    /// its -wal and -shm files the database file's mode), and tighten an existing one and its
    /// -wal/-shm to 0600.
    /// </summary>
    private static void MakePrivate(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if (!File.Exists(path))
        {
            using var created = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = Private });
        }

        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            if (File.Exists(file) && (File.GetUnixFileMode(file) & ~Private) != 0)
            {
                File.SetUnixFileMode(file, Private);
            }
        }
    }

    private static void Validate(EventStoreOptions o)
    {
        string? problem =
            o.QueueCapacity < 1 ? "QueueCapacity must be at least 1" :
            o.MaxBatch < 1 ? "MaxBatch must be at least 1" :
            o.BatchInterval < TimeSpan.Zero || o.BatchInterval > TimeSpan.FromMinutes(1) ? "BatchInterval must be between 0 and 1 minute" :
            o.RetainFor <= TimeSpan.Zero ? "RetainFor must be positive" :
            o.MaxEvents < 1 ? "MaxEvents must be at least 1" :
            o.MaxBytes < 1 ? "MaxBytes must be positive" :
            o.CompactionInterval <= TimeSpan.Zero ? "CompactionInterval must be positive" :
            o.CompactionChunk < 1 ? "CompactionChunk must be at least 1" :
            o.TimeProvider is null ? "TimeProvider is required" :
            o.Checkpoints is { EveryEvents: < 1 } ? "Checkpoints.EveryEvents must be at least 1" :
            o.Checkpoints is { } c && c.Interval <= TimeSpan.Zero ? "Checkpoints.Interval must be positive" :
            null;
        if (problem is not null)
        {
            throw new EventStoreException("invalid event store options: " + problem);
        }
    }
}
