using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace ProxyGuard.Engine.Budgets;

/// <summary>
/// Shares the ledger's usage with the other replicas through PostgreSQL, off the request path: every
/// <see cref="Interval"/> one background loop adds this replica's new usage (per budget limit, key and slot) to
/// <c>proxyguard_budget_usage</c> and reads back the other replicas' usage of the keys this replica tracks, which the
/// ledger then adds to its own when it decides. Requests never wait for the database.
/// While the database cannot be reached for longer than <see cref="StaleAfter"/>, the ledger admits by itself at most
/// limit / replicas (the replicas seen in the last heartbeat) until a sync succeeds again.
/// </summary>
internal sealed partial class BudgetSync : IAsyncDisposable
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS proxyguard_budget_usage (
            meter text NOT NULL,
            key text NOT NULL,
            slot bigint NOT NULL,
            replica text NOT NULL,
            amount bigint NOT NULL,
            expires_ms bigint NOT NULL,
            PRIMARY KEY (meter, key, slot, replica));
        CREATE INDEX IF NOT EXISTS proxyguard_budget_usage_expiry ON proxyguard_budget_usage (expires_ms);
        CREATE TABLE IF NOT EXISTS proxyguard_budget_replicas (
            replica text PRIMARY KEY,
            seen timestamptz NOT NULL);
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly BudgetLedger _ledger;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private long _lastSuccess = Stopwatch.GetTimestamp();
    private long _lastCleanupMs;
    private int _replicas = 1;
    private volatile bool _healthy = true;
    private int _disposed;

    private BudgetSync(NpgsqlDataSource dataSource, BudgetLedger ledger, TimeSpan interval, ILogger logger)
    {
        _dataSource = dataSource;
        _ledger = ledger;
        Interval = interval;
        StaleAfter = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, interval.Ticks * 3));
        _logger = logger;
    }

    /// <summary>A random id per process: a restarted replica sees its earlier usage as another replica's.</summary>
    public string ReplicaId { get; } = Guid.NewGuid().ToString("N")[..16];

    public TimeSpan Interval { get; }

    public TimeSpan StaleAfter { get; }

    /// <summary>False while syncs have failed for longer than <see cref="StaleAfter"/> (the local share applies).</summary>
    public bool Healthy => _healthy;

    /// <summary>Replicas seen in the last heartbeat (this one included).</summary>
    public int Replicas => Volatile.Read(ref _replicas);

    public long Syncs { get; private set; }

    /// <summary>
    /// Connects, creates the tables and runs one sync; throws <see cref="BudgetStoreException"/> with a one-line reason
    /// when the database cannot be used (the proxy then does not start).
    /// </summary>
    public static async Task<BudgetSync> StartAsync(string url, BudgetLedger ledger, TimeSpan interval, ILogger logger, CancellationToken ct)
    {
        NpgsqlDataSource dataSource;
        try
        {
            // The same URL grammar and password sources (URL, PGPASSWORD) as --events-store; the message never holds the password.
            var (connectionString, _) = Audit.Central.CentralConnection.Parse(url, passwordFile: null, Environment.GetEnvironmentVariable, "--budget-store");
            var builder = new NpgsqlConnectionStringBuilder(connectionString) { Timeout = 3, CommandTimeout = 3 };
            dataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        }
        catch (ArgumentException ex)
        {
            throw new BudgetStoreException(ex.Message);
        }

        var sync = new BudgetSync(dataSource, ledger, interval, logger);
        try
        {
            await using (var connection = await dataSource.OpenConnectionAsync(ct))
            {
                await using var create = new NpgsqlCommand(Schema, connection);
                await create.ExecuteNonQueryAsync(ct);
            }

            await sync.SyncOnceAsync(ct);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            await dataSource.DisposeAsync();
            throw new BudgetStoreException($"cannot use the budget store: {ex.Message.ReplaceLineEndings(" ")}", ex);
        }

        sync._loop = Task.Run(() => sync.RunAsync(sync._stop.Token), CancellationToken.None);
        return sync;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                await SyncOnceAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException or IOException)
            {
                if (Stopwatch.GetElapsedTime(Volatile.Read(ref _lastSuccess)) > StaleAfter && _healthy)
                {
                    _healthy = false;
                    LogDegraded(_logger, Replicas, ex.Message.ReplaceLineEndings(" "));
                }
            }

            if (!_healthy || _ledger.Count * 4 > _ledger.MaxKeys * 3)
            {
                _ledger.Sweep();
            }
        }
    }

    /// <summary>Sends this replica's new usage, reads the others' usage of the keys tracked here, beats the heart.</summary>
    internal async Task SyncOnceAsync(CancellationToken ct)
    {
        var now = _ledger.NowMs;
        var meters = _ledger.Meters.ToList();
        var deltas = new List<(BudgetMeter Meter, long Slot, long Amount)>();
        var scratch = new List<(long Slot, long Amount)>();
        foreach (var meter in meters)
        {
            lock (meter)
            {
                scratch.Clear();
                meter.TakeDeltas(meter.SlotOf(now), scratch);
                foreach (var (slot, amount) in scratch)
                {
                    deltas.Add((meter, slot, amount));
                }
            }
        }

        Dictionary<(string, string), List<(long, long)>> remote;
        int replicas;
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            await using (var tx = await connection.BeginTransactionAsync(ct))
            {
                if (deltas.Count > 0)
                {
                    await using var upsert = new NpgsqlCommand("""
                        INSERT INTO proxyguard_budget_usage (meter, key, slot, replica, amount, expires_ms)
                        SELECT m, k, s, @replica, a, e FROM unnest(@meters, @keys, @slots, @amounts, @expires) AS t(m, k, s, a, e)
                        ON CONFLICT (meter, key, slot, replica) DO UPDATE SET amount = proxyguard_budget_usage.amount + excluded.amount
                        """, connection, tx);
                    upsert.Parameters.AddWithValue("replica", ReplicaId);
                    upsert.Parameters.Add(new NpgsqlParameter("meters", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = deltas.Select(d => d.Meter.MeterId).ToArray() });
                    upsert.Parameters.Add(new NpgsqlParameter("keys", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = deltas.Select(d => d.Meter.Key).ToArray() });
                    upsert.Parameters.Add(new NpgsqlParameter("slots", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = deltas.Select(d => d.Slot).ToArray() });
                    upsert.Parameters.Add(new NpgsqlParameter("amounts", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = deltas.Select(d => d.Amount).ToArray() });
                    upsert.Parameters.Add(new NpgsqlParameter("expires", NpgsqlDbType.Array | NpgsqlDbType.Bigint)
                    {
                        Value = deltas.Select(d => (d.Slot + BudgetMeter.Slots + 2) * d.Meter.SlotMs).ToArray(),
                    });
                    await upsert.ExecuteNonQueryAsync(ct);
                }

                await using var beat = new NpgsqlCommand("""
                    INSERT INTO proxyguard_budget_replicas (replica, seen) VALUES (@replica, now())
                    ON CONFLICT (replica) DO UPDATE SET seen = now()
                    """, connection, tx);
                beat.Parameters.AddWithValue("replica", ReplicaId);
                await beat.ExecuteNonQueryAsync(ct);
                await tx.CommitAsync(ct);
            }

            remote = [];
            if (meters.Count > 0)
            {
                await using var read = new NpgsqlCommand("""
                    SELECT u.meter, u.key, u.slot, sum(u.amount)::bigint
                    FROM proxyguard_budget_usage u
                    JOIN unnest(@meters, @keys, @from) AS t(m, k, f) ON u.meter = t.m AND u.key = t.k AND u.slot >= t.f
                    WHERE u.replica <> @replica
                    GROUP BY u.meter, u.key, u.slot
                    """, connection);
                read.Parameters.AddWithValue("replica", ReplicaId);
                read.Parameters.Add(new NpgsqlParameter("meters", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = meters.Select(m => m.MeterId).ToArray() });
                read.Parameters.Add(new NpgsqlParameter("keys", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = meters.Select(m => m.Key).ToArray() });
                read.Parameters.Add(new NpgsqlParameter("from", NpgsqlDbType.Array | NpgsqlDbType.Bigint)
                {
                    Value = meters.Select(m => m.SlotOf(now) - BudgetMeter.Slots).ToArray(),
                });
                await using var reader = await read.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                {
                    var id = (reader.GetString(0), reader.GetString(1));
                    if (!remote.TryGetValue(id, out var rows))
                    {
                        remote[id] = rows = [];
                    }

                    rows.Add((reader.GetInt64(2), reader.GetInt64(3)));
                }
            }

            await using (var count = new NpgsqlCommand(
                "SELECT count(*) FROM proxyguard_budget_replicas WHERE seen > now() - make_interval(secs => @secs)", connection))
            {
                count.Parameters.AddWithValue("secs", Math.Max(10.0, StaleAfter.TotalSeconds * 3));
                replicas = (int)Math.Max(1, (long)(await count.ExecuteScalarAsync(ct) ?? 1L));
            }

            if (now - _lastCleanupMs > 30_000)
            {
                await using var cleanup = new NpgsqlCommand("DELETE FROM proxyguard_budget_usage WHERE expires_ms < @now", connection);
                cleanup.Parameters.AddWithValue("now", now);
                await cleanup.ExecuteNonQueryAsync(ct);
                _lastCleanupMs = now;
            }
        }
        catch
        {
            // Not stored: send these again next time.
            foreach (var (meter, slot, amount) in deltas)
            {
                lock (meter)
                {
                    meter.ReturnDelta(slot, amount);
                }
            }

            throw;
        }

        var readAt = _ledger.NowMs;
        foreach (var meter in meters)
        {
            lock (meter)
            {
                meter.SetRemote(meter.SlotOf(readAt), remote.GetValueOrDefault((meter.MeterId, meter.Key)));
            }
        }

        Volatile.Write(ref _replicas, replicas);
        Volatile.Write(ref _lastSuccess, Stopwatch.GetTimestamp());
        _ledger.Replicas = replicas;
        _ledger.SharedUntilMs = now + (long)StaleAfter.TotalMilliseconds;
        Syncs++;
        if (!_healthy)
        {
            _healthy = true;
            LogRecovered(_logger, replicas);
        }
    }

    /// <summary>Stops the loop and hands over the last interval's usage (once; later calls do nothing).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        try
        {
            using var last = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await SyncOnceAsync(last.Token); // hand over what this replica counted since the last sync
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException or System.Net.Sockets.SocketException or InvalidOperationException or IOException)
        {
            // The database is gone: the other replicas miss this replica's last interval (within the stated tolerance).
        }

        await _dataSource.DisposeAsync();
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "budget store unreachable; each replica now admits at most limit/{Replicas} of every budget by itself until it is back: {Reason}")]
    private static partial void LogDegraded(ILogger logger, int replicas, string reason);

    [LoggerMessage(EventId = 61, Level = LogLevel.Information, Message = "budget store reachable again ({Replicas} replicas); budgets are shared again")]
    private static partial void LogRecovered(ILogger logger, int replicas);
}

/// <summary>The budget store cannot be used (a one-line reason).</summary>
internal sealed class BudgetStoreException : Exception
{
    public BudgetStoreException(string message)
        : base(message)
    {
    }

    public BudgetStoreException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public BudgetStoreException()
    {
    }
}
