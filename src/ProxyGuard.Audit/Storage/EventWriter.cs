// Over 400 lines: the single writer thread owns the SQLite connection, its prepared statements and the batch being
// committed (with retries and compaction steps between batches); keeping them in one class keeps that ownership in one place.
using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using ProxyGuard.Audit.Chain;
using SQLitePCL;

namespace ProxyGuard.Audit.Storage;

/// <summary>
/// The single writer: a dedicated thread that takes events off the queue, inserts them with one prepared
/// statement (bound through SQLitePCL directly, the hot path) inside one transaction per batch, and commits when the batch is full, when its oldest event has
/// waited <see cref="EventStoreOptions.BatchInterval"/>, or at once when someone waits for the commit.
/// Ids are assigned here, in commit order, so readers paging with <c>id &gt; after</c> never skip one.
/// A failed commit keeps the batch and retries it (reopening the database) until it succeeds or the store
/// is disposed; meanwhile the store reports unhealthy.
/// </summary>
internal sealed class EventWriter : IDisposable
{
    /// <summary>Page cache of the writer's connection, in KiB (about SQLite's default, 2000 KiB).</summary>
    internal const int CacheKiB = 2048;

    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    private readonly string _connectionString;
    private readonly ChannelReader<QueueItem> _queue;
    private readonly Action _taken;
    private readonly EventStoreOptions _options;
    private readonly StoreStatus _status;
    private readonly RetentionCompactor _compactor;
    private readonly List<PreparedEvent> _batch = [];
    private readonly List<TaskCompletionSource<bool>> _commitWaiters = [];
    private readonly List<TaskCompletionSource<bool>> _compactionWaiters = [];
    private readonly ManualResetEventSlim _stopSignal = new();

    // Waking the writer: producers signal it only when it sleeps idle, or when an item needs a prompt commit (a waiter,
    // a flush, a compaction, shutdown) or the queue holds a full batch. While a batch is open the writer sleeps until the
    // batch's deadline, so under load one wake-up serves a whole batch instead of one per event (a kernel signal and a
    // thread-pool continuation per event were about a tenth of the proxy's busy CPU). No spinning before blocking.
    private readonly ManualResetEventSlim _wake = new(false, 0);
    private int _sleepState; // SleepBusy, SleepIdle or SleepBatching
    private const int SleepBusy = 0;
    private const int SleepIdle = 1;
    private const int SleepBatching = 2;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _batchIntervalTicks;
    private SqliteConnection? _connection;
    private sqlite3_stmt? _insertStatement;
    private sqlite3? _db;
    private SqliteCommand? _updateLastId;
    private SqliteCommand? _begin;
    private SqliteCommand? _commit;
    private SqliteCommand? _updateShipped;
    private SqliteCommand? _insertCheckpoint;
    private SqliteCommand? _pruneCheckpoints;
    private SqliteCommand? _updateCheckpointsShipped;
    private readonly CheckpointSigner? _signer;
    private long _checkpointNumber;
    private long _checkpointEventId;
    private byte[] _checkpointHash = EventChain.Genesis;
    private long _checkpointTicks = Stopwatch.GetTimestamp();
    private long _persistedCheckpointsShipped;
    private bool _checkpointDue;
    private bool _shippedDue;
    private readonly ArrayBufferWriter<byte> _scratch = new(1024);
    private byte[] _lastHash = EventChain.Genesis;
    private long _persistedShipped;
    private bool _shippedLoaded;
    private long _lastId;
    private long? _appliedMaxPageCount;
    private volatile bool _stopping;
    private bool _abandoned;

    /// <param name="taken">Called once for every event taken off the queue (frees its queue slot).</param>
    /// <param name="signer">Signs checkpoints of the chain (null: none).</param>
    public EventWriter(string connectionString, ChannelReader<QueueItem> queue, EventStoreOptions options, StoreStatus status, Action taken, CheckpointSigner? signer = null)
    {
        _signer = signer;
        _connectionString = connectionString;
        _queue = queue;
        _taken = taken;
        _options = options;
        _status = status;
        _compactor = new RetentionCompactor(options);
        _batchIntervalTicks = (long)(options.BatchInterval.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>Completes when the writer thread has drained the queue and closed the database.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Opens the database (creating schema and indexes) on the caller's thread; throws on failure.</summary>
    public void Open()
    {
        EnsureOpen();
    }

    public void Start()
    {
        var thread = new Thread(Run)
        {
            IsBackground = true,
            Name = "ProxyGuard audit writer",
        };
        thread.Start();
    }

    /// <summary>Called on dispose: give up retrying a failing commit after one more attempt.</summary>
    public void BeginStop()
    {
        _stopping = true;
        _stopSignal.Set();
    }

    public void Dispose()
    {
        CloseConnection();
        _stopSignal.Dispose();
        _wake.Dispose();
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                if (_queue.TryRead(out var item))
                {
                    if (item.Kind == QueueItemKind.Compact)
                    {
                        Accept(item);
                        continue;
                    }

                    RunBatch(item);
                    if (_compactor.Active)
                    {
                        RunCompactionStep();
                    }
                }
                else if (_compactor.Active && !_status.Failing)
                {
                    RunCompactionStep();
                }
                else if (_queue.Completion.IsCompleted)
                {
                    break;
                }
                else
                {
                    Sleep(Timeout.InfiniteTimeSpan, SleepIdle);
                }
            }
        }
        catch (Exception ex)
        {
            _status.MarkStopped("audit writer stopped: " + OneLine(ex));
        }
        finally
        {
            AbandonRemaining();
            CloseConnection();
            _completion.TrySetResult();
        }
    }

    private void RunBatch(QueueItem first)
    {
        _batch.Clear();
        _commitWaiters.Clear();
        var urgent = Accept(first);
        var deadline = Stopwatch.GetTimestamp() + _batchIntervalTicks;
        while (!urgent && _batch.Count < _options.MaxBatch)
        {
            if (_queue.TryRead(out var item))
            {
                urgent |= Accept(item);
                continue;
            }

            var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero || _queue.Completion.IsCompleted)
            {
                break;
            }

            Sleep(remaining, SleepBatching);
        }

        CommitWithRetry();
    }

    /// <summary>Adds an item to the open batch; returns true when the batch should be committed now.</summary>
    private bool Accept(QueueItem item)
    {
        switch (item.Kind)
        {
            case QueueItemKind.Event:
                _taken();
                _batch.Add(item.Event!);
                if (item.Completion is not null)
                {
                    _commitWaiters.Add(item.Completion);
                    return true;
                }

                return false;

            case QueueItemKind.Flush:
                _commitWaiters.Add(item.Completion!);
                return true;

            case QueueItemKind.Checkpoint:
                _checkpointDue = true;
                if (item.Completion is not null)
                {
                    _commitWaiters.Add(item.Completion);
                }

                return true;

            case QueueItemKind.Shipped:
                // R8F-2: the markers are the replica's witness for events verify; written with the next commit only, a
                // burst shipped before a quiet spell stayed unrecorded until a clean shutdown (none after a SIGKILL).
                _shippedDue = true;
                return true;

            case QueueItemKind.Compact:
                if (item.Completion is not null)
                {
                    _compactionWaiters.Add(item.Completion);
                }

                _compactor.Start();
                return false;

            default:
                return false;
        }
    }

    /// <summary>
    /// Called by the store after it put an item in the queue. <paramref name="urgent"/>: the item must not wait for the
    /// open batch's deadline (someone waits for its commit, a flush, a compaction, or the queue was closed).
    /// </summary>
    public void Notify(bool urgent)
    {
        // Pairs with the fence in Sleep: either the writer sees the item when it re-checks the queue, or this sees its state.
        Interlocked.MemoryBarrier();
        var state = Volatile.Read(ref _sleepState);
        if (state == SleepBusy)
        {
            return;
        }

        if ((state == SleepIdle || urgent || _queue.Count >= _options.MaxBatch)
            && Interlocked.CompareExchange(ref _sleepState, SleepBusy, state) == state)
        {
            _wake.Set();
        }
    }

    /// <summary>Blocks until <see cref="Notify"/> wakes the writer or <paramref name="timeout"/> passes; callers re-check the queue.</summary>
    private void Sleep(TimeSpan timeout, int state)
    {
        _wake.Reset();
        Interlocked.Exchange(ref _sleepState, state);
        if (_queue.Count == 0 && !_queue.Completion.IsCompleted)
        {
            _wake.Wait(timeout);
        }

        Interlocked.Exchange(ref _sleepState, SleepBusy);
    }

    private void CommitWithRetry()
    {
        var backoff = TimeSpan.FromMilliseconds(Math.Clamp(_options.BatchInterval.TotalMilliseconds, 10, 500));
        var attempts = 0;
        while (!_abandoned)
        {
            try
            {
                if (_batch.Count > 0 || _checkpointDue || _shippedDue)
                {
                    EnsureOpen();
                    WriteBatch();
                    _status.AddWritten(_batch.Count);
                    _status.MarkHealthy();
                }

                Complete(_commitWaiters, true);
                _batch.Clear();
                return;
            }
            catch (Exception ex)
            {
                CloseConnection();
                attempts++;
                _status.MarkFailing("cannot commit audit events: " + OneLine(ex));
                if (_stopping && attempts >= 2)
                {
                    _abandoned = true;
                    break;
                }

                _stopSignal.Wait(backoff);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
        }

        _status.AddDropped(_batch.Count);
        _batch.Clear();
        Complete(_commitWaiters, false);
    }

    private void WriteBatch()
    {
        ApplyPageLimit(_connection!);
        _begin!.ExecuteNonQuery();
        try
        {
            var id = _lastId;
            var hash = _lastHash;
            var statement = _insertStatement!;
            foreach (var e in _batch)
            {
                id++;
                hash = EventChain.Next(hash, id, e, _scratch);
                BindInt64(statement, 1, id);
                BindInt64(statement, 2, e.TimeMicros);
                BindText(statement, 3, e.Client);
                BindText(statement, 4, e.ClientAddress);
                BindText(statement, 5, e.Kind);
                BindText(statement, 6, e.Method);
                BindText(statement, 7, e.Scheme);
                BindText(statement, 8, e.Host);
                BindInt64(statement, 9, e.Port);
                BindText(statement, 10, e.Path);
                BindText(statement, 11, e.Decision);
                BindText(statement, 12, e.Rule);
                BindText(statement, 13, e.Reason);
                BindText(statement, 14, e.FindingsJson);
                BindText(statement, 15, e.SecretsJson);
                if (e.Status is int status)
                {
                    BindInt64(statement, 16, status);
                }
                else
                {
                    Check(raw.sqlite3_bind_null(statement, 16));
                }

                BindInt64(statement, 17, e.RequestBytes);
                BindInt64(statement, 18, e.ResponseBytes);
                Check(raw.sqlite3_bind_double(statement, 19, e.DurationMs));
                BindText(statement, 20, e.GrantJson);
                Check(raw.sqlite3_bind_blob(statement, 21, hash));
                var rc = raw.sqlite3_step(statement);
                raw.sqlite3_reset(statement);
                if (rc != raw.SQLITE_DONE)
                {
                    Check(rc);
                }
            }

            var checkpoint = SignCheckpoint(id, hash);
            var checkpointsShipped = Math.Min(_status.CheckpointsShipped, checkpoint?.Number ?? _checkpointNumber);
            if (checkpointsShipped != _persistedCheckpointsShipped)
            {
                _updateCheckpointsShipped!.Parameters[0].Value = checkpointsShipped;
                _updateCheckpointsShipped.ExecuteNonQuery();
            }

            _updateLastId!.Parameters[0].Value = id;
            _updateLastId.ExecuteNonQuery();
            var shipped = _status.MaxUnshipped is null ? _persistedShipped : Math.Min(_status.Shipped, id);
            if (shipped != _persistedShipped)
            {
                _updateShipped!.Parameters[0].Value = shipped;
                _updateShipped.ExecuteNonQuery();
            }

            if (_status.FaultInjector?.Invoke() is Exception fault)
            {
                throw fault;
            }

            _commit!.ExecuteNonQuery();
            _lastId = id;
            _lastHash = hash;
            _persistedCheckpointsShipped = checkpointsShipped;
            _checkpointDue = false;
            _shippedDue = false;
            if (checkpoint is not null)
            {
                _checkpointNumber = checkpoint.Number;
                _checkpointEventId = checkpoint.EventId;
                _checkpointHash = checkpoint.Hash();
                _checkpointTicks = Stopwatch.GetTimestamp();
            }

            _persistedShipped = shipped;
            _status.LastId = id;
            _status.UpdateOutbox();
            if (raw.sqlite3_db_status(_db, raw.SQLITE_DBSTATUS_CACHE_USED, out var cacheBytes, out _, 0) == raw.SQLITE_OK)
            {
                _status.WriterCacheBytes = cacheBytes;
            }
        }
        catch
        {
            TryRollback();
            throw;
        }
    }

    /// <summary>
    /// Inside the open transaction: signs and stores a checkpoint of <paramref name="id"/> (the newest event) when
    /// checkpoints are on, there are events since the last one, and one is due (asked for, enough events, or the
    /// interval passed); prunes the checkpoints of deleted events. Returns it, or null.
    /// </summary>
    private Checkpoint? SignCheckpoint(long id, byte[] hash)
    {
        if (_signer is null || _options.Checkpoints is not { } settings || id <= _checkpointEventId)
        {
            return null;
        }

        if (!_checkpointDue && id - _checkpointEventId < settings.EveryEvents && Stopwatch.GetElapsedTime(_checkpointTicks) < settings.Interval)
        {
            return null;
        }

        var checkpoint = _signer.Sign(_checkpointNumber + 1, id, hash, PreparedEvent.ToMicros(_options.TimeProvider.GetUtcNow()), _checkpointHash);
        var p = _insertCheckpoint!.Parameters;
        p[0].Value = checkpoint.ReplicaId;
        p[1].Value = checkpoint.Number;
        p[2].Value = checkpoint.EventId;
        p[3].Value = checkpoint.EventHash;
        p[4].Value = checkpoint.TimeMicros;
        p[5].Value = checkpoint.Previous;
        p[6].Value = checkpoint.KeyId;
        p[7].Value = checkpoint.Signature;
        _insertCheckpoint.ExecuteNonQuery();
        _pruneCheckpoints!.ExecuteNonQuery();
        return checkpoint;
    }

    private void RunCompactionStep()
    {
        try
        {
            EnsureOpen();
            var deleted = _compactor.Step(_connection!, _lastId, _status.Shipped);
            _status.AddCompacted(deleted);
            if (!_compactor.Active)
            {
                Complete(_compactionWaiters, true);
            }
        }
        catch (Exception ex)
        {
            _compactor.Abort();
            CloseConnection();
            _status.NoteError("audit compaction failed: " + OneLine(ex));
            Complete(_compactionWaiters, false);
        }
    }

    private void EnsureOpen()
    {
        if (_connection is not null)
        {
            return;
        }

        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
            Execute(connection, "PRAGMA auto_vacuum = INCREMENTAL");
            var mode = Convert.ToString(Scalar(connection, "PRAGMA journal_mode = WAL"), CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new EventStoreException($"the database refused WAL journaling (journal_mode is {mode})");
            }

            // cache_size: the writer touches the right edge of the table and, in each index, the leaf where the
            // current decision/client/host appends; 2 MiB (512 pages) holds that, and a miss is read back from the
            // OS page cache. A larger cache only keeps pages it will not touch again, and with a single writer it
            // never empties: at 16 MiB it grew ~2 MiB/min at 120 events/s until full (the soak's RSS creep,
            // docs/reliability.md section 4).
            Execute(connection, FormattableString.Invariant(
                $"PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8192; PRAGMA cache_size = -{CacheKiB}"));
            _appliedMaxPageCount = null;
            ApplyPageLimit(connection);

            var version = Convert.ToInt64(Scalar(connection, "PRAGMA user_version"), CultureInfo.InvariantCulture);
            if (version > EventSchema.Version)
            {
                throw new EventStoreException($"schema version {version} is newer than this ProxyGuard understands ({EventSchema.Version})");
            }

            // Creating the schema (or touching the meta row) is also the write probe: a read-only file or
            // file system fails here, when the store opens, rather than on the first batch.
            var migrate = version == 1;
            Execute(
                connection,
                "BEGIN IMMEDIATE; " + (migrate ? EventSchema.MigrateFrom1 : string.Empty) + EventSchema.Create +
                (migrate ? EventSchema.AnchorAfterExisting + "; " : string.Empty) + $" PRAGMA user_version = {EventSchema.Version}; " +
                "UPDATE meta SET value = value WHERE key = 'last_id'; COMMIT;");
            _lastId = Convert.ToInt64(Scalar(connection, EventSchema.SelectLastId), CultureInfo.InvariantCulture);
            _lastHash = ChainHead(connection, _lastId);
            _persistedShipped = Convert.ToInt64(Scalar(connection, EventSchema.SelectShipped), CultureInfo.InvariantCulture);
            if (!_shippedLoaded && _status.MaxUnshipped is not null)
            {
                _status.Shipped = _persistedShipped;
            }

            _persistedCheckpointsShipped = Convert.ToInt64(Scalar(connection, EventSchema.SelectCheckpointsShipped), CultureInfo.InvariantCulture);
            if (!_shippedLoaded)
            {
                _status.CheckpointsShipped = _persistedCheckpointsShipped;
            }

            LoadNewestCheckpoint(connection);
            _shippedLoaded = true;
            _status.LastId = _lastId;
            _status.UpdateOutbox();
            PrepareCommands(connection);
            _connection = connection;
        }
        catch
        {
            DisposeCommands();
            connection.Dispose();
            throw;
        }
    }

    private void PrepareCommands(SqliteConnection connection)
    {
        _begin = connection.CreateCommand();
        _begin.CommandText = "BEGIN IMMEDIATE";
        _commit = connection.CreateCommand();
        _commit.CommandText = "COMMIT";
        _updateLastId = connection.CreateCommand();
        _updateLastId.CommandText = EventSchema.UpdateLastId;
        _updateLastId.Parameters.Add(new SqliteParameter("$id", SqliteType.Integer));
        _updateShipped = connection.CreateCommand();
        _updateShipped.CommandText = EventSchema.UpdateShipped;
        _updateShipped.Parameters.Add(new SqliteParameter("$shipped", SqliteType.Integer));
        _insertCheckpoint = connection.CreateCommand();
        _insertCheckpoint.CommandText = EventSchema.InsertCheckpoint;
        foreach (var (name, type) in new[]
        {
            ("$replica", SqliteType.Text), ("$n", SqliteType.Integer), ("$event", SqliteType.Integer), ("$eventHash", SqliteType.Blob),
            ("$time", SqliteType.Integer), ("$previous", SqliteType.Blob), ("$keyId", SqliteType.Blob), ("$signature", SqliteType.Blob),
        })
        {
            _insertCheckpoint.Parameters.Add(new SqliteParameter(name, type));
        }

        _pruneCheckpoints = connection.CreateCommand();
        _pruneCheckpoints.CommandText = EventSchema.PruneCheckpoints;
        _updateCheckpointsShipped = connection.CreateCommand();
        _updateCheckpointsShipped.CommandText = EventSchema.UpdateCheckpointsShipped;
        _updateCheckpointsShipped.Parameters.Add(new SqliteParameter("$n", SqliteType.Integer));
        _db = connection.Handle;
        Check(raw.sqlite3_prepare_v2(connection.Handle, EventSchema.Insert, out var insert));
        _insertStatement = insert;
        _begin.Prepare();
        _commit.Prepare();
        _updateLastId.Prepare();
        _updateShipped.Prepare();
    }

    /// <summary>The number, event and hash of the newest stored checkpoint (the next one links to it).</summary>
    private void LoadNewestCheckpoint(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT " + EventSchema.CheckpointColumns + " FROM checkpoints ORDER BY n DESC LIMIT 1";
        using var reader = command.ExecuteReader();
        if (reader.Read())
        {
            var newest = new Checkpoint(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), (byte[])reader.GetValue(3),
                reader.GetInt64(4), (byte[])reader.GetValue(5), (byte[])reader.GetValue(6), (byte[])reader.GetValue(7));
            _checkpointNumber = newest.Number;
            _checkpointEventId = newest.EventId;
            _checkpointHash = newest.Hash();
        }
        else
        {
            _checkpointNumber = 0;
            _checkpointEventId = 0;
            _checkpointHash = EventChain.Genesis;
        }
    }

    /// <summary>The hash the next event chains to: the newest event's, else the retention anchor's when it is the newest id.</summary>
    private static byte[] ChainHead(SqliteConnection connection, long lastId)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT hash FROM events WHERE id = $id";
        command.Parameters.AddWithValue("$id", lastId);
        if (command.ExecuteScalar() is byte[] { Length: EventChain.HashSize } newest)
        {
            return newest;
        }

        using var anchor = connection.CreateCommand();
        anchor.CommandText = EventSchema.SelectAnchor;
        using var reader = anchor.ExecuteReader();
        return reader.Read() && reader.GetInt64(0) == lastId && reader.GetValue(1) is byte[] { Length: EventChain.HashSize } hash
            ? hash
            : EventChain.Genesis;
    }

    private void ApplyPageLimit(SqliteConnection connection)
    {
        var wanted = _status.MaxPageCount;
        if (wanted != _appliedMaxPageCount)
        {
            Execute(connection, FormattableString.Invariant($"PRAGMA max_page_count = {wanted ?? 4294967294}"));
            _appliedMaxPageCount = wanted;
        }
    }

    private void TryRollback()
    {
        if (_connection is null)
        {
            return;
        }

        try
        {
            Execute(_connection, "ROLLBACK");
        }
        catch (SqliteException)
        {
            // No transaction was open (SQLite already rolled back): nothing to undo.
        }
    }

    private void CloseConnection()
    {
        DisposeCommands();
        _connection?.Dispose();
        _connection = null;
    }

    private void DisposeCommands()
    {
        _insertStatement?.Dispose();
        _insertStatement = null;
        _db = null;
        _updateLastId?.Dispose();
        _updateShipped?.Dispose();
        _updateShipped = null;
        _insertCheckpoint?.Dispose();
        _pruneCheckpoints?.Dispose();
        _updateCheckpointsShipped?.Dispose();
        _insertCheckpoint = _pruneCheckpoints = _updateCheckpointsShipped = null;
        _begin?.Dispose();
        _commit?.Dispose();
        _updateLastId = _begin = _commit = null;
    }

    private void AbandonRemaining()
    {
        _status.AddDropped(_batch.Count);
        _batch.Clear();
        Complete(_commitWaiters, false);
        Complete(_compactionWaiters, false);
        while (_queue.TryRead(out var item))
        {
            if (item.Kind == QueueItemKind.Event)
            {
                _taken();
                _status.AddDropped(1);
            }

            item.Completion?.TrySetResult(false);
        }
    }

    private void BindInt64(sqlite3_stmt statement, int index, long value) => Check(raw.sqlite3_bind_int64(statement, index, value));

    private void BindText(sqlite3_stmt statement, int index, string? value) =>
        Check(value is null ? raw.sqlite3_bind_null(statement, index) : raw.sqlite3_bind_text(statement, index, value));

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    private static void Complete(List<TaskCompletionSource<bool>> waiters, bool result)
    {
        foreach (var waiter in waiters)
        {
            waiter.TrySetResult(result);
        }

        waiters.Clear();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    internal static string OneLine(Exception ex) =>
        ex.Message.ReplaceLineEndings(" ").Trim();
}
