using System.Globalization;
using System.Text;
using Npgsql;
using NpgsqlTypes;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit.Central;

/// <summary>
/// The central event store in PostgreSQL, seen from one replica. The local <see cref="EventStore"/> stays the durable
/// outbox: a shipping loop reads committed local events past the shipped cursor and inserts them in batches, keyed by
/// (replica id, local id) so a batch shipped twice is stored once; the same transaction advances the replica's
/// shipped cursor in PostgreSQL. After each round the loop tries to take the sequencer lock for one short transaction
/// and give ingested rows their gapless central cursor (see <see cref="CentralSchema.Sequence"/>). Readers page the
/// sequenced table by that cursor. While PostgreSQL is unreachable the loop retries with a bounded back-off and
/// <see cref="Up"/> is false; the local store keeps accepting events up to its outbox bound.
/// </summary>
public sealed class CentralStore : IAsyncDisposable
{
    private const int SequenceChunk = 5000;
    private const int RetentionChunk = 5000;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    private readonly CentralStoreOptions _options;
    private readonly EventStore _local;
    private readonly NpgsqlDataSource _source;
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;
    private volatile bool _up;
    private volatile string? _lastError;
    private long _lagMicros;
    private long _shippedTotal;
    private long _nextRetention;
    private long _checkpointCursor = -1;

    private CentralStore(CentralStoreOptions options, EventStore local)
    {
        _options = options;
        _local = local;
        var builder = new NpgsqlConnectionStringBuilder(options.ConnectionString)
        {
            ApplicationName = "proxyguard",
            Timeout = 5,
            CommandTimeout = 15,
            MaxPoolSize = 8,
            ConnectionIdleLifetime = 60,
        };
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
    }

    /// <summary>True while the last round reached PostgreSQL.</summary>
    public bool Up => _up;

    /// <summary>Why the last round failed (one line, no credentials), or null.</summary>
    public string? LastError => _lastError;

    /// <summary>Committed local events not yet shipped.</summary>
    public long Backlog => _local.UnshippedEvents;

    /// <summary>Age of the oldest unshipped event (0 when none wait).</summary>
    public TimeSpan Lag => Backlog == 0 ? TimeSpan.Zero : TimeSpan.FromMicroseconds(Math.Max(0, Interlocked.Read(ref _lagMicros)));

    /// <summary>Events shipped since start.</summary>
    public long Shipped => Interlocked.Read(ref _shippedTotal);

    public string Display => _options.Display;

    public string ReplicaId => _options.ReplicaId;

    /// <summary>Creates the client side without connecting; <see cref="Start"/> begins shipping.</summary>
    public static CentralStore Create(CentralStoreOptions options, EventStore local)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(local);
        return new CentralStore(options, local);
    }

    /// <summary>Connects once and creates the schema; throws <see cref="EventStoreException"/> when that fails.</summary>
    public async Task EnsureSchemaAsync(CancellationToken ct)
    {
        try
        {
            await using var connection = await _source.OpenConnectionAsync(ct);
            await using var tx = await connection.BeginTransactionAsync(ct);
            await using (var create = new NpgsqlCommand(CentralSchema.Create, connection, tx))
            {
                await create.ExecuteNonQueryAsync(ct);
            }

            await tx.CommitAsync(ct);
        }
        catch (Exception ex) when (IsStoreError(ex))
        {
            throw new EventStoreException($"central event store {_options.Display}: {OneLine(ex)}", ex);
        }
    }

    public void Start()
    {
        _loop = Task.Factory.StartNew(() => RunAsync(_stop.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Events with a central cursor greater than <see cref="EventQuery.After"/>, oldest first.</summary>
    /// <exception cref="EventStoreException">PostgreSQL cannot be read now.</exception>
    public async Task<EventPage> QueryAsync(EventQuery q, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(q);
        var after = Math.Max(0, q.After);
        var limit = Math.Clamp(q.Limit, 1, EventQuery.MaxLimit);
        var events = new List<AuditEvent>(Math.Min(limit, 128));
        try
        {
            await using var command = _source.CreateCommand();
            var sql = new StringBuilder("SELECT ").Append(CentralSchema.SelectColumns).Append(" FROM proxyguard_events WHERE seq > $1");
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
            AddFilter(command, sql, "decision", q.Decision);
            AddFilter(command, sql, "client", q.Client);
            AddFilter(command, sql, "host", PreparedEvent.NormalizeHost(q.Host));
            sql.Append(" ORDER BY seq LIMIT ").Append(limit.ToString(CultureInfo.InvariantCulture));
            command.CommandText = sql.ToString();
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var row = Map(reader);
                events.Add(row.Event.ToAuditEvent(row.Seq, row.Replica, row.LocalId));
            }
        }
        catch (Exception ex) when (IsStoreError(ex) || ex is System.Text.Json.JsonException)
        {
            throw new EventStoreException($"cannot read the central event store {_options.Display}: {OneLine(ex)}", ex);
        }

        return new EventPage(events, events.Count > 0 ? events[^1].Id : after);
    }

    /// <summary>One shipping round now (tests and shutdown): ships what is committed, sequences, returns the rows shipped.</summary>
    internal async Task<int> ShipOnceAsync(CancellationToken ct)
    {
        var cursor = await RegisterAsync(ct);
        var shipped = 0;
        while (true)
        {
            var rows = _local.Reader.ReadStored(cursor, _options.ShipBatch);
            if (rows.Count == 0)
            {
                break;
            }

            await ShipAsync(rows, ct);
            cursor = rows[^1].Id;
            shipped += rows.Count;
        }

        await ShipCheckpointsAsync(cursor, ct);
        await SequenceAsync(ct);
        return shipped;
    }

    /// <summary>Stops the loop and ships what is committed, if PostgreSQL answers before <paramref name="ct"/> ends; never throws.</summary>
    public async Task TryShipRemainingAsync(CancellationToken ct)
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        try
        {
            if (_local.Signer is not null)
            {
                try
                {
                    await _local.CheckpointAsync(ct); // the last event gets a checkpoint, shipped with it
                }
                catch (EventStoreException)
                {
                    // The local store is failing: ship what is committed anyway.
                }
            }

            await ShipOnceAsync(ct);
        }
        catch (Exception ex) when (IsStoreError(ex) || ex is EventStoreException or ReplicaConflictException or OperationCanceledException)
        {
            _lastError = OneLine(ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        await _source.DisposeAsync();
        _stop.Dispose();
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        long? cursor = null;
        while (!ct.IsCancellationRequested)
        {
            var full = false;
            try
            {
                cursor ??= await RegisterAsync(ct);
                var rows = _local.Reader.ReadStored(cursor.Value, _options.ShipBatch);
                if (rows.Count > 0)
                {
                    Interlocked.Exchange(ref _lagMicros, PreparedEvent.ToMicros(_options.TimeProvider.GetUtcNow()) - rows[0].Event.TimeMicros);
                    await ShipAsync(rows, ct);
                    cursor = rows[^1].Id;
                    full = rows.Count >= _options.ShipBatch;
                }

                await ShipCheckpointsAsync(cursor.Value, ct);

                await SequenceAsync(ct);
                await RetainIfDueAsync(ct);
                _up = true;
                _lastError = null;
                backoff = TimeSpan.FromMilliseconds(100);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (IsStoreError(ex) || ex is EventStoreException or ReplicaConflictException)
            {
                // Whether the failed batch committed is unknown: read the shipped cursor again on reconnect.
                cursor = null;
                _up = false;
                _lastError = OneLine(ex);
                NoteLag();

                await DelayAsync(backoff, ct);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                continue;
            }

            if (!full)
            {
                await DelayAsync(_options.ShipInterval, ct);
            }
        }
    }

    /// <summary>While shipping fails: the age of the oldest unshipped event, for the lag metric (best effort).</summary>
    private void NoteLag()
    {
        try
        {
            if (Backlog > 0 && _local.Reader.ReadStored(_local.ShippedThrough, 1) is [var oldest])
            {
                Interlocked.Exchange(ref _lagMicros, PreparedEvent.ToMicros(_options.TimeProvider.GetUtcNow()) - oldest.Event.TimeMicros);
            }
        }
        catch (EventStoreException)
        {
            // The local store is failing too; it reports that itself.
        }
    }

    /// <summary>Creates the schema and this replica's row when needed; returns the shipped cursor PostgreSQL holds.</summary>
    private async Task<long> RegisterAsync(CancellationToken ct)
    {
        await EnsureSchemaAsync(ct);
        var (anchorId, anchorHash) = _local.Reader.ReadAnchor();
        await using var connection = await _source.OpenConnectionAsync(ct);
        await using (var register = new NpgsqlCommand(CentralSchema.Register, connection))
        {
            register.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _options.ReplicaId });
            register.Parameters.Add(new NpgsqlParameter<long> { TypedValue = anchorId });
            register.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = anchorHash });
            register.Parameters.Add(new NpgsqlParameter { Value = (object?)_options.Incarnation ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            register.Parameters.Add(new NpgsqlParameter<long> { TypedValue = _local.LastId });
            await register.ExecuteNonQueryAsync(ct);
        }

        long shipped;
        await using (var select = new NpgsqlCommand(CentralSchema.SelectShipped, connection))
        {
            select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _options.ReplicaId });
            await using var reader = await select.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct))
            {
                throw new EventStoreException($"replica {_options.ReplicaId} is not registered in the central event store {_options.Display}");
            }

            shipped = reader.GetInt64(0);
            var incarnation = reader.IsDBNull(1) ? null : reader.GetString(1);
            var lastSeen = reader.GetDateTime(2).ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            CheckRegistration(shipped, incarnation, lastSeen);
        }

        _local.MarkShipped(shipped);
        if (_local.Signer is not null)
        {
            await using var checkpoints = new NpgsqlCommand(CentralSchema.SelectCheckpointCursor, connection);
            checkpoints.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _options.ReplicaId });
            _checkpointCursor = (long)(await checkpoints.ExecuteScalarAsync(ct))!;
            _local.MarkCheckpointsShipped(_checkpointCursor);
        }

        return shipped;
    }

    /// <summary>
    /// R7F-1: the shipped cursor PostgreSQL holds for this replica id is taken only when this data directory is the one
    /// that registered the id and its store reaches that cursor; anything else would mark unshipped local events as
    /// shipped. Refused with a one-line reason (at start, the replica does not start; later, it does not ship).
    /// </summary>
    private void CheckRegistration(long shipped, string? incarnation, string lastSeen)
    {
        if (_options.Incarnation is { } mine && incarnation != mine)
        {
            throw new ReplicaConflictException(
                $"replica id {_options.ReplicaId} is registered in the central event store by another data directory (last seen {lastSeen}): " +
                "two live replicas share the id, or this data directory is new, lost or restored; give this replica its own --replica-id " +
                "(or none: an id is then kept in the data directory)");
        }

        if (shipped > _local.LastId)
        {
            throw new ReplicaConflictException(
                $"replica id {_options.ReplicaId}: the central event store says events up to {shipped.ToString(CultureInfo.InvariantCulture)} were shipped, " +
                $"but this data directory's newest event is {_local.LastId.ToString(CultureInfo.InvariantCulture)} (restored or replaced data directory, " +
                "or an edited central cursor); nothing is marked as shipped");
        }
    }

    /// <summary>
    /// At start: registers (or checks) this replica once, within <paramref name="timeout"/>. Throws
    /// <see cref="ReplicaConflictException"/> when the id belongs to another data directory; an unreachable store is
    /// not an error here (the shipping loop retries, and checks again when it connects).
    /// </summary>
    public async Task CheckRegistrationAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(timeout);
        try
        {
            await RegisterAsync(bounded.Token);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is not ReplicaConflictException && (IsStoreError(ex) || ex is EventStoreException or OperationCanceledException))
        {
            _lastError = OneLine(ex);
        }
    }

    private async Task ShipAsync(List<StoredEvent> rows, CancellationToken ct)
    {
        var n = rows.Count;
        var ids = new long[n];
        var times = new long[n];
        var clients = new string?[n];
        var addresses = new string?[n];
        var kinds = new string?[n];
        var methods = new string?[n];
        var schemes = new string?[n];
        var hosts = new string?[n];
        var ports = new int[n];
        var paths = new string?[n];
        var decisions = new string?[n];
        var rules = new string?[n];
        var reasons = new string?[n];
        var findings = new string?[n];
        var secrets = new string?[n];
        var statuses = new int?[n];
        var requestBytes = new long[n];
        var responseBytes = new long[n];
        var durations = new double[n];
        var grants = new string?[n];
        var hashes = new byte[]?[n];
        for (var i = 0; i < n; i++)
        {
            var (id, e, hash) = rows[i];
            ids[i] = id;
            times[i] = e.TimeMicros;
            clients[i] = e.Client;
            addresses[i] = e.ClientAddress;
            kinds[i] = e.Kind;
            methods[i] = e.Method;
            schemes[i] = e.Scheme;
            hosts[i] = e.Host;
            ports[i] = e.Port;
            paths[i] = e.Path;
            decisions[i] = e.Decision;
            rules[i] = e.Rule;
            reasons[i] = e.Reason;
            findings[i] = e.FindingsJson;
            secrets[i] = e.SecretsJson;
            statuses[i] = e.Status;
            requestBytes[i] = e.RequestBytes;
            responseBytes[i] = e.ResponseBytes;
            durations[i] = e.DurationMs;
            grants[i] = e.GrantJson;
            hashes[i] = hash;
        }

        await using var connection = await _source.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var ship = new NpgsqlCommand(CentralSchema.Ship, connection, tx))
        {
            ship.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _options.ReplicaId });
            ship.Parameters.Add(new NpgsqlParameter { Value = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            ship.Parameters.Add(new NpgsqlParameter { Value = times, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            foreach (var texts in new[] { clients, addresses, kinds, methods, schemes, hosts })
            {
                ship.Parameters.Add(new NpgsqlParameter { Value = texts, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            }

            ship.Parameters.Add(new NpgsqlParameter { Value = ports, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            foreach (var texts in new[] { paths, decisions, rules, reasons, findings, secrets })
            {
                ship.Parameters.Add(new NpgsqlParameter { Value = texts, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            }

            ship.Parameters.Add(new NpgsqlParameter { Value = statuses, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            ship.Parameters.Add(new NpgsqlParameter { Value = requestBytes, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            ship.Parameters.Add(new NpgsqlParameter { Value = responseBytes, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            ship.Parameters.Add(new NpgsqlParameter { Value = durations, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Double });
            ship.Parameters.Add(new NpgsqlParameter { Value = grants, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            ship.Parameters.Add(new NpgsqlParameter { Value = hashes, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
            await ship.ExecuteNonQueryAsync(ct);
        }

        await using (var mark = new NpgsqlCommand(CentralSchema.MarkShipped, connection, tx))
        {
            mark.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _options.ReplicaId });
            mark.Parameters.Add(new NpgsqlParameter<long> { TypedValue = ids[^1] });
            await mark.ExecuteNonQueryAsync(ct);
        }

        await tx.CommitAsync(ct);
        _local.MarkShipped(ids[^1]);
        Interlocked.Add(ref _shippedTotal, n);
    }

    /// <summary>Ships the local checkpoints not yet shipped whose event is shipped (up to <paramref name="shippedThrough"/>).</summary>
    private async Task ShipCheckpointsAsync(long shippedThrough, CancellationToken ct)
    {
        if (_local.Signer is null || _checkpointCursor < 0)
        {
            return;
        }

        var pending = _local.Reader.ReadCheckpoints(_checkpointCursor, shippedThrough, 100);
        if (pending.Count == 0)
        {
            return;
        }

        await using var connection = await _source.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        foreach (var c in pending)
        {
            await using var ship = new NpgsqlCommand(CentralSchema.ShipCheckpoint, connection, tx);
            ship.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _options.ReplicaId });
            ship.Parameters.Add(new NpgsqlParameter<string> { TypedValue = c.ReplicaId });
            ship.Parameters.Add(new NpgsqlParameter<long> { TypedValue = c.Number });
            ship.Parameters.Add(new NpgsqlParameter<long> { TypedValue = c.EventId });
            ship.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = c.EventHash });
            ship.Parameters.Add(new NpgsqlParameter<long> { TypedValue = c.TimeMicros });
            ship.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = c.Previous });
            ship.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = c.KeyId });
            ship.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = c.Signature });
            await ship.ExecuteNonQueryAsync(ct);
        }

        await tx.CommitAsync(ct);
        _checkpointCursor = pending[^1].Number;
        _local.MarkCheckpointsShipped(_checkpointCursor);
    }

    /// <summary>Takes the sequencer lock if free and numbers what is ingested (in bounded transactions).</summary>
    private async Task SequenceAsync(CancellationToken ct)
    {
        for (var round = 0; round < 20; round++)
        {
            await using var connection = await _source.OpenConnectionAsync(ct);
            await using var tx = await connection.BeginTransactionAsync(ct);
            await using (var lockCommand = new NpgsqlCommand($"SELECT pg_try_advisory_xact_lock({CentralSchema.SequencerLock})", connection, tx))
            {
                if (!(bool)(await lockCommand.ExecuteScalarAsync(ct))!)
                {
                    return; // another replica sequences now; it will take these rows too
                }
            }

            long moved;
            await using (var sequence = new NpgsqlCommand(CentralSchema.Sequence, connection, tx))
            {
                sequence.Parameters.Add(new NpgsqlParameter<int> { TypedValue = SequenceChunk });
                await using var reader = await sequence.ExecuteReaderAsync(ct);
                moved = await reader.ReadAsync(ct) ? reader.GetInt64(1) : 0;
            }

            await tx.CommitAsync(ct);
            if (moved < SequenceChunk)
            {
                return;
            }
        }
    }

    private async Task RetainIfDueAsync(CancellationToken ct)
    {
        if (_options.RetainFor is not TimeSpan retain)
        {
            return;
        }

        var now = _options.TimeProvider.GetUtcNow();
        if (now.UtcTicks < Interlocked.Read(ref _nextRetention))
        {
            return;
        }

        Interlocked.Exchange(ref _nextRetention, (now + _options.RetentionInterval).UtcTicks);
        var cutoff = PreparedEvent.ToMicros(now - retain);
        for (var round = 0; round < 100; round++)
        {
            await using var connection = await _source.OpenConnectionAsync(ct);
            await using var tx = await connection.BeginTransactionAsync(ct);
            await using (var lockCommand = new NpgsqlCommand($"SELECT pg_try_advisory_xact_lock({CentralSchema.SequencerLock})", connection, tx))
            {
                if (!(bool)(await lockCommand.ExecuteScalarAsync(ct))!)
                {
                    return;
                }
            }

            long deleted;
            await using (var retainCommand = new NpgsqlCommand(CentralSchema.Retain, connection, tx))
            {
                retainCommand.Parameters.Add(new NpgsqlParameter<long> { TypedValue = cutoff });
                retainCommand.Parameters.Add(new NpgsqlParameter<int> { TypedValue = RetentionChunk });
                deleted = (long)(await retainCommand.ExecuteScalarAsync(ct))!;
            }

            if (deleted > 0)
            {
                await using var prune = new NpgsqlCommand(CentralSchema.PruneCheckpoints, connection, tx);
                await prune.ExecuteNonQueryAsync(ct);
            }

            await tx.CommitAsync(ct);
            if (deleted < RetentionChunk)
            {
                return;
            }
        }
    }

    internal static (long Seq, string Replica, long LocalId, PreparedEvent Event, byte[]? Hash) Map(NpgsqlDataReader r) =>
        (r.GetInt64(0), r.GetString(1), r.GetInt64(2), PreparedEvent.Read(r, 3), r.IsDBNull(22) ? null : (byte[])r.GetValue(22));

    internal static bool IsStoreError(Exception ex) =>
        ex is NpgsqlException or TimeoutException or IOException or InvalidOperationException or System.Net.Sockets.SocketException
        || (ex is OperationCanceledException && ex.InnerException is TimeoutException);

    /// <summary>One line; Npgsql messages name host and port but never the password.</summary>
    internal static string OneLine(Exception ex)
    {
        var message = ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message;
        return message.ReplaceLineEndings(" ").Trim();
    }

    private static void AddFilter(NpgsqlCommand command, StringBuilder sql, string column, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = value });
        sql.Append(" AND ").Append(column).Append(" = $").Append(command.Parameters.Count.ToString(CultureInfo.InvariantCulture));
    }

    private static async Task DelayAsync(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, ct);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }
}
