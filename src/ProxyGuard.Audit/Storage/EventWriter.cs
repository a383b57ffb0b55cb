using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Storage;

/// <summary>
/// The single writer: a dedicated thread that takes events off the queue, inserts them with one prepared
/// statement inside one transaction per batch, and commits when the batch is full, when its oldest event has
/// waited <see cref="EventStoreOptions.BatchInterval"/>, or at once when someone waits for the commit.
/// Ids are assigned here, in commit order, so readers paging with <c>id &gt; after</c> never skip one.
/// A failed commit keeps the batch and retries it (reopening the database) until it succeeds or the store
/// is disposed; meanwhile the store reports unhealthy.
/// </summary>
internal sealed class EventWriter : IDisposable
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    private readonly string _connectionString;
    private readonly ChannelReader<QueueItem> _queue;
    private readonly EventStoreOptions _options;
    private readonly StoreStatus _status;
    private readonly RetentionCompactor _compactor;
    private readonly List<PreparedEvent> _batch = [];
    private readonly List<TaskCompletionSource<bool>> _commitWaiters = [];
    private readonly List<TaskCompletionSource<bool>> _compactionWaiters = [];
    private readonly ManualResetEventSlim _stopSignal = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _batchIntervalTicks;
    private SqliteConnection? _connection;
    private SqliteCommand? _insert;
    private SqliteCommand? _updateLastId;
    private SqliteCommand? _begin;
    private SqliteCommand? _commit;
    private SqliteParameter[] _parameters = [];
    private long _lastId;
    private long? _appliedMaxPageCount;
    private volatile bool _stopping;
    private bool _abandoned;

    public EventWriter(string connectionString, ChannelReader<QueueItem> queue, EventStoreOptions options, StoreStatus status)
    {
        _connectionString = connectionString;
        _queue = queue;
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
                else if (!WaitForItems(Timeout.InfiniteTimeSpan))
                {
                    break;
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
            if (remaining <= TimeSpan.Zero || !WaitForItems(remaining))
            {
                break;
            }
        }

        CommitWithRetry();
    }

    /// <summary>Adds an item to the open batch; returns true when the batch should be committed now.</summary>
    private bool Accept(QueueItem item)
    {
        switch (item.Kind)
        {
            case QueueItemKind.Event:
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

    private bool WaitForItems(TimeSpan timeout)
    {
        var wait = _queue.WaitToReadAsync();
        if (wait.IsCompleted)
        {
            return wait.GetAwaiter().GetResult();
        }

        var task = wait.AsTask();
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return task.GetAwaiter().GetResult();
        }

        return task.Wait(timeout) && task.Result;
    }

    private void CommitWithRetry()
    {
        var backoff = TimeSpan.FromMilliseconds(Math.Clamp(_options.BatchInterval.TotalMilliseconds, 10, 500));
        var attempts = 0;
        while (!_abandoned)
        {
            try
            {
                if (_batch.Count > 0)
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
            var p = _parameters;
            foreach (var e in _batch)
            {
                id++;
                p[0].Value = id;
                p[1].Value = e.TimeMicros;
                p[2].Value = (object?)e.Client ?? DBNull.Value;
                p[3].Value = (object?)e.ClientAddress ?? DBNull.Value;
                p[4].Value = e.Kind;
                p[5].Value = (object?)e.Method ?? DBNull.Value;
                p[6].Value = (object?)e.Scheme ?? DBNull.Value;
                p[7].Value = e.Host;
                p[8].Value = e.Port;
                p[9].Value = (object?)e.Path ?? DBNull.Value;
                p[10].Value = e.Decision;
                p[11].Value = (object?)e.Rule ?? DBNull.Value;
                p[12].Value = (object?)e.Reason ?? DBNull.Value;
                p[13].Value = (object?)e.FindingsJson ?? DBNull.Value;
                p[14].Value = (object?)e.SecretsJson ?? DBNull.Value;
                p[15].Value = e.Status is int status ? status : DBNull.Value;
                p[16].Value = e.RequestBytes;
                p[17].Value = e.ResponseBytes;
                p[18].Value = e.DurationMs;
                _insert!.ExecuteNonQuery();
            }

            _updateLastId!.Parameters[0].Value = id;
            _updateLastId.ExecuteNonQuery();
            if (_status.FaultInjector?.Invoke() is Exception fault)
            {
                throw fault;
            }

            _commit!.ExecuteNonQuery();
            _lastId = id;
        }
        catch
        {
            TryRollback();
            throw;
        }
    }

    private void RunCompactionStep()
    {
        try
        {
            EnsureOpen();
            var deleted = _compactor.Step(_connection!, _lastId);
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

            Execute(connection, "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY");
            _appliedMaxPageCount = null;
            ApplyPageLimit(connection);

            var version = Convert.ToInt64(Scalar(connection, "PRAGMA user_version"), CultureInfo.InvariantCulture);
            if (version > EventSchema.Version)
            {
                throw new EventStoreException($"schema version {version} is newer than this ProxyGuard understands ({EventSchema.Version})");
            }

            // Creating the schema (or touching the meta row) is also the write probe: a read-only file or
            // file system fails here, when the store opens, rather than on the first batch.
            Execute(
                connection,
                "BEGIN IMMEDIATE; " + EventSchema.Create + $" PRAGMA user_version = {EventSchema.Version}; " +
                "UPDATE meta SET value = value WHERE key = 'last_id'; COMMIT;");
            _lastId = Convert.ToInt64(Scalar(connection, EventSchema.SelectLastId), CultureInfo.InvariantCulture);
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
        _insert = connection.CreateCommand();
        _insert.CommandText = EventSchema.Insert;
        string[] names =
        [
            "$id", "$time", "$client", "$clientAddress", "$kind", "$method", "$scheme", "$host", "$port", "$path",
            "$decision", "$rule", "$reason", "$findings", "$secrets", "$status", "$requestBytes", "$responseBytes", "$durationMs",
        ];
        _parameters = new SqliteParameter[names.Length];
        for (var i = 0; i < names.Length; i++)
        {
            _parameters[i] = new SqliteParameter { ParameterName = names[i], Value = DBNull.Value };
            _insert.Parameters.Add(_parameters[i]);
        }

        _begin.Prepare();
        _commit.Prepare();
        _updateLastId.Prepare();
        _insert.Prepare();
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
        _insert?.Dispose();
        _updateLastId?.Dispose();
        _begin?.Dispose();
        _commit?.Dispose();
        _insert = _updateLastId = _begin = _commit = null;
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
                _status.AddDropped(1);
            }

            item.Completion?.TrySetResult(false);
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
