using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace ProxyGuard.Engine.Budgets;

/// <summary>
/// Shares the policy's budgets with the other replicas through PostgreSQL as leases. For every budget limit, key and
/// slot, <c>proxyguard_budget_usage</c> holds each replica's claim: the units the store leased to it (while the slot
/// is current) or the units it used (once the slot is past: an unused lease goes back). The store grants a lease only
/// while the claims of all replicas in the window (the slot and the <see cref="BudgetMeter.Slots"/> before it, and any
/// slot after it) leave room, one grant at a time per key (a transaction-scoped advisory lock): the fleet never admits
/// more than the limit. A replica admits within its lease without asking; one background loop returns unused leases,
/// keeps a lease ready for every key in use (about <see cref="BudgetLedger.LeaseSize"/> units, the next slot's before
/// it starts) and, every <see cref="Interval"/>, records a heartbeat and reads the others' usage for the fallback. A
/// request whose lease lacks units wakes the loop and waits for its next round trip (requests waiting together share it).
/// When a round fails, the ledger falls back to each replica's share (limit / replicas) until one succeeds.
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

    // The claims this replica holds, written as they are (only this replica writes its rows).
    private const string ClaimsSql = """
        INSERT INTO proxyguard_budget_usage (meter, key, slot, replica, amount, expires_ms)
        SELECT m, k, s, @replica, a, e FROM unnest(@meters, @keys, @slots, @amounts, @expires) AS t(m, k, s, a, e)
        ON CONFLICT (meter, key, slot, replica) DO UPDATE SET amount = excluded.amount
        """;

    // One grant at a time per key across the fleet, taken in one order (no deadlock); held until the batch commits.
    // Sorting in a subquery makes PostgreSQL take the locks in that order.
    private const string LockSql = """
        SELECT count(*) FROM (
            SELECT pg_advisory_xact_lock(h) AS l
            FROM (SELECT DISTINCT hashtextextended(m || chr(10) || k, 0) AS h FROM unnest(@meters, @keys) AS t(m, k) ORDER BY 1) o) locked
        """;

    // A grant: up to what was asked, within what the whole window's claims (every replica, this slot back to the
    // window's start and any later slot) leave. A later statement of the batch sees this one's rows (one key per statement).
    private const string GrantSql = """
        INSERT INTO proxyguard_budget_usage AS u (meter, key, slot, replica, amount, expires_ms)
        SELECT r.m, r.k, r.s, @replica, g.n, r.e
        FROM unnest(@meters, @keys, @slots, @wants, @limits, @expires) AS r(m, k, s, w, l, e)
        CROSS JOIN LATERAL (
            SELECT least(r.w, r.l - coalesce(sum(x.amount), 0)) AS n
            FROM proxyguard_budget_usage x
            WHERE x.meter = r.m AND x.key = r.k AND x.slot >= r.s - @window) g
        WHERE g.n > 0
        ON CONFLICT (meter, key, slot, replica) DO UPDATE SET amount = u.amount + excluded.amount
        RETURNING u.meter, u.key, u.slot, u.amount
        """;

    private const string BeatSql = """
        INSERT INTO proxyguard_budget_replicas (replica, seen) VALUES (@replica, now())
        ON CONFLICT (replica) DO UPDATE SET seen = now()
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly BudgetLedger _ledger;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly object _gate = new();
    private Dictionary<(BudgetMeter Meter, long Slot), long> _demands = [];
    private TaskCompletionSource<bool> _round = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;
    private long _lastFull = Stopwatch.GetTimestamp();
    private long _lastCleanupMs;
    private int _replicas = 1;
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

    /// <summary>The longest a request waits for a lease (max(1 s, 3 × <see cref="Interval"/>)); past it, the share decides.</summary>
    public TimeSpan StaleAfter { get; }

    /// <summary>False while the last round failed (the local share applies).</summary>
    public bool Healthy => !_ledger.StoreDown;

    /// <summary>Replicas seen in the last heartbeat (this one included).</summary>
    public int Replicas => Volatile.Read(ref _replicas);

    public long Syncs { get; private set; }

    /// <summary>Rounds a waiting request woke (not the periodic ones).</summary>
    public long LeaseRounds { get; private set; }

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

        ledger.LeaseWait = sync.StaleAfter;
        ledger.StoreDown = false;
        ledger.Sync = sync;
        sync._loop = Task.Run(() => sync.RunAsync(sync._stop.Token), CancellationToken.None);
        return sync;
    }

    /// <summary>
    /// Asks the store for what <paramref name="needs"/> lack (joining the next round), waiting at most
    /// <paramref name="wait"/>. True when the round answered (granted or not: the meters say); false when it failed or
    /// took too long.
    /// </summary>
    public async Task<bool> LeaseAsync(IReadOnlyList<(BudgetMeter Meter, long Slot, long Amount)> needs, TimeSpan wait)
    {
        Task<bool> round;
        lock (_gate)
        {
            foreach (var (meter, slot, amount) in needs)
            {
                _demands[(meter, slot)] = _demands.GetValueOrDefault((meter, slot)) + amount;
            }

            round = _round.Task;
        }

        Wake();
        try
        {
            return await round.WaitAsync(wait);
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private void Wake()
    {
        try
        {
            if (_wake.CurrentCount == 0)
            {
                _wake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // already woken
        }
        catch (ObjectDisposedException)
        {
            // stopped: the waiter times out and its share decides
        }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var due = Interval - Stopwatch.GetElapsedTime(Volatile.Read(ref _lastFull));
            var woken = false;
            if (due > TimeSpan.Zero)
            {
                try
                {
                    woken = await _wake.WaitAsync(due, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            var full = !woken || Stopwatch.GetElapsedTime(Volatile.Read(ref _lastFull)) >= Interval;
            try
            {
                await RoundAsync(full, returnAll: false, ct);
                if (!full)
                {
                    LeaseRounds++;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException or IOException)
            {
                if (!_ledger.StoreDown)
                {
                    _ledger.StoreDown = true;
                    LogDegraded(_logger, Replicas, ex.Message.ReplaceLineEndings(" "));
                }

                Volatile.Write(ref _lastFull, Stopwatch.GetTimestamp()); // retry at the next interval, not at once
            }

            if (full && (_ledger.StoreDown || _ledger.Count * 4 > _ledger.MaxKeys * 3))
            {
                _ledger.Sweep();
            }
        }
    }

    /// <summary>One full round: claims and leases, heartbeat, the others' usage (for tests and benchmarks).</summary>
    internal Task SyncOnceAsync(CancellationToken ct) => RoundAsync(full: true, returnAll: false, ct);

    private async Task RoundAsync(bool full, bool returnAll, CancellationToken ct)
    {
        TaskCompletionSource<bool> round;
        Dictionary<(BudgetMeter Meter, long Slot), long> demands;
        lock (_gate)
        {
            round = _round;
            _round = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            demands = _demands;
            _demands = [];
        }

        var ok = false;
        try
        {
            if (full)
            {
                Volatile.Write(ref _lastFull, Stopwatch.GetTimestamp());
            }

            await RoundCoreAsync(full, returnAll, demands, ct);
            ok = true;
        }
        finally
        {
            round.TrySetResult(ok);
        }
    }

    private async Task RoundCoreAsync(bool full, bool returnAll, Dictionary<(BudgetMeter Meter, long Slot), long> demands, CancellationToken ct)
    {
        var now = _ledger.NowMs;
        var meters = _ledger.Meters.ToList();
        var replicas = Math.Max(1, _ledger.Replicas);
        var intervalMs = (long)Interval.TotalMilliseconds;
        var claims = new List<(BudgetMeter Meter, long Slot, long Amount)>();
        var asks = new Dictionary<(BudgetMeter Meter, long Slot), long>();
        foreach (var ((meter, slot), need) in demands)
        {
            lock (meter)
            {
                if (!meter.Dead && meter.Limit > 0)
                {
                    // A demand from a slot that has ended is for the current one now.
                    var current = Math.Max(slot, meter.SlotOf(now));
                    asks[(meter, current)] = Math.Max(asks.GetValueOrDefault((meter, current)), Math.Max(need, BudgetLedger.LeaseSize(meter.Limit, replicas)));
                }
            }
        }

        var scratch = new List<(long Slot, long Amount)>();
        foreach (var meter in meters)
        {
            lock (meter)
            {
                if (meter.Dead)
                {
                    continue;
                }

                var slot = meter.SlotOf(now);
                scratch.Clear();
                meter.TakeClaims(slot, returnAll, scratch);
                foreach (var (s, amount) in scratch)
                {
                    claims.Add((meter, s, amount));
                }

                if (returnAll || meter.Limit <= 0 || now - meter.LastDemandMs > 2 * meter.SlotMs)
                {
                    continue;
                }

                // A key in use keeps a lease ready: topped up below half, and the next slot's taken before it starts.
                var lease = BudgetLedger.LeaseSize(meter.Limit, replicas);
                var available = meter.Available(slot);
                if (full && (available * 2 < lease || meter.ShortSlot == slot))
                {
                    asks[(meter, slot)] = Math.Max(asks.GetValueOrDefault((meter, slot)), lease - Math.Min(available, lease - 1));
                }

                var next = slot + 1;
                if (full && (next * meter.SlotMs) - now < 2 * intervalMs && meter.Granted(next) == 0 && meter.ShortSlot != next)
                {
                    asks[(meter, next)] = Math.Max(asks.GetValueOrDefault((meter, next)), lease);
                }
            }
        }

        // One statement per layer: a key appears at most once in each (a statement does not see its own rows).
        var layers = new List<List<(BudgetMeter Meter, long Slot, long Want)>>();
        foreach (var group in asks.GroupBy(a => (a.Key.Meter.MeterId, a.Key.Meter.Key)))
        {
            var i = 0;
            foreach (var ((meter, slot), want) in group.OrderBy(a => a.Key.Slot))
            {
                if (layers.Count == i)
                {
                    layers.Add([]);
                }

                layers[i++].Add((meter, slot, want));
            }
        }

        var granted = new Dictionary<(string Meter, string Key, long Slot), long>();
        Dictionary<(string, string), List<(long, long)>> remote = [];
        var replicasSeen = replicas;
        await using (var connection = await _dataSource.OpenConnectionAsync(ct))
        {
            await using (var batch = new NpgsqlBatch(connection))
            {
                if (claims.Count > 0)
                {
                    var command = new NpgsqlBatchCommand(ClaimsSql);
                    command.Parameters.AddWithValue("replica", ReplicaId);
                    command.Parameters.Add(TextArray("meters", claims.Select(c => c.Meter.MeterId)));
                    command.Parameters.Add(TextArray("keys", claims.Select(c => c.Meter.Key)));
                    command.Parameters.Add(BigintArray("slots", claims.Select(c => c.Slot)));
                    command.Parameters.Add(BigintArray("amounts", claims.Select(c => c.Amount)));
                    command.Parameters.Add(BigintArray("expires", claims.Select(c => Expiry(c.Meter, c.Slot))));
                    batch.BatchCommands.Add(command);
                }

                if (layers.Count > 0)
                {
                    var all = layers[0];
                    var locks = new NpgsqlBatchCommand(LockSql);
                    locks.Parameters.Add(TextArray("meters", all.Select(a => a.Meter.MeterId)));
                    locks.Parameters.Add(TextArray("keys", all.Select(a => a.Meter.Key)));
                    batch.BatchCommands.Add(locks);
                    foreach (var layer in layers)
                    {
                        var command = new NpgsqlBatchCommand(GrantSql);
                        command.Parameters.AddWithValue("replica", ReplicaId);
                        command.Parameters.AddWithValue("window", (long)BudgetMeter.Slots);
                        command.Parameters.Add(TextArray("meters", layer.Select(a => a.Meter.MeterId)));
                        command.Parameters.Add(TextArray("keys", layer.Select(a => a.Meter.Key)));
                        command.Parameters.Add(BigintArray("slots", layer.Select(a => a.Slot)));
                        command.Parameters.Add(BigintArray("wants", layer.Select(a => a.Want)));
                        command.Parameters.Add(BigintArray("limits", layer.Select(a => a.Meter.Limit)));
                        command.Parameters.Add(BigintArray("expires", layer.Select(a => Expiry(a.Meter, a.Slot))));
                        batch.BatchCommands.Add(command);
                    }
                }

                if (full)
                {
                    var beat = new NpgsqlBatchCommand(BeatSql);
                    beat.Parameters.AddWithValue("replica", ReplicaId);
                    batch.BatchCommands.Add(beat);
                }

                if (batch.BatchCommands.Count > 0)
                {
                    // One round trip, one implicit transaction: the locks hold until every grant is written.
                    await using var reader = await batch.ExecuteReaderAsync(ct);
                    do
                    {
                        while (await reader.ReadAsync(ct))
                        {
                            if (reader.FieldCount == 4)
                            {
                                granted[(reader.GetString(0), reader.GetString(1), reader.GetInt64(2))] = reader.GetInt64(3);
                            }
                        }
                    }
                    while (await reader.NextResultAsync(ct));
                }
            }

            if (full && meters.Count > 0)
            {
                await using var read = new NpgsqlCommand("""
                    SELECT u.meter, u.key, u.slot, sum(u.amount)::bigint
                    FROM proxyguard_budget_usage u
                    JOIN unnest(@meters, @keys, @from) AS t(m, k, f) ON u.meter = t.m AND u.key = t.k AND u.slot >= t.f
                    WHERE u.replica <> @replica
                    GROUP BY u.meter, u.key, u.slot
                    """, connection);
                read.Parameters.AddWithValue("replica", ReplicaId);
                read.Parameters.Add(TextArray("meters", meters.Select(m => m.MeterId)));
                read.Parameters.Add(TextArray("keys", meters.Select(m => m.Key)));
                read.Parameters.Add(BigintArray("from", meters.Select(m => m.SlotOf(now) - BudgetMeter.Slots)));
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

            if (full)
            {
                await using var count = new NpgsqlCommand(
                    "SELECT count(*) FROM proxyguard_budget_replicas WHERE seen > now() - make_interval(secs => @secs)", connection);
                count.Parameters.AddWithValue("secs", Math.Max(10.0, StaleAfter.TotalSeconds * 3));
                replicasSeen = (int)Math.Max(1, (long)(await count.ExecuteScalarAsync(ct) ?? 1L));
            }

            if (full && now - _lastCleanupMs > 30_000)
            {
                await using var cleanup = new NpgsqlCommand("DELETE FROM proxyguard_budget_usage WHERE expires_ms < @now", connection);
                cleanup.Parameters.AddWithValue("now", now);
                await cleanup.ExecuteNonQueryAsync(ct);
                _lastCleanupMs = now;
            }
        }

        // Committed: the store holds the claims written and the grants returned.
        foreach (var (meter, slot, amount) in claims)
        {
            lock (meter)
            {
                meter.Stored(slot, amount);
            }
        }

        foreach (var ((meter, slot), want) in asks.OrderBy(a => a.Key.Slot))
        {
            lock (meter)
            {
                var before = meter.Central(slot);
                if (granted.TryGetValue((meter.MeterId, meter.Key, slot), out var total))
                {
                    meter.Grant(slot, total);
                }

                // Less than asked: the fleet has nothing more in this window now; refuse at once (this slot and earlier
                // ones) until a later round finds room. All that was asked: there was room, also for earlier slots.
                if (total - before < want)
                {
                    meter.ShortSlot = Math.Max(meter.ShortSlot, slot);
                }
                else if (meter.ShortSlot >= slot)
                {
                    meter.ShortSlot = long.MinValue;
                }
            }
        }

        var readAt = _ledger.NowMs;
        if (full)
        {
            foreach (var meter in meters)
            {
                lock (meter)
                {
                    meter.SetRemote(meter.SlotOf(readAt), remote.GetValueOrDefault((meter.MeterId, meter.Key)));
                }
            }

            Volatile.Write(ref _replicas, replicasSeen);
            _ledger.Replicas = replicasSeen;
            Syncs++;
        }

        if (_ledger.StoreDown)
        {
            _ledger.StoreDown = false;
            LogRecovered(_logger, replicasSeen);
        }
    }

    private static long Expiry(BudgetMeter meter, long slot) => (slot + BudgetMeter.Slots + 2) * meter.SlotMs;

    private static NpgsqlParameter TextArray(string name, IEnumerable<string> values) =>
        new(name, NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = values.ToArray() };

    private static NpgsqlParameter BigintArray(string name, IEnumerable<long> values) =>
        new(name, NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = values.ToArray() };

    /// <summary>Stops the loop and gives back this replica's unused leases (once; later calls do nothing).</summary>
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
            await RoundAsync(full: false, returnAll: true, last.Token); // hand over what this replica used, return what it did not
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException or System.Net.Sockets.SocketException or InvalidOperationException or IOException)
        {
            // The database is gone: this replica's unused leases stay claimed until their slots leave the window.
        }

        _ledger.StoreDown = true; // no more leases: a request still arriving is decided by this replica's share
        await _dataSource.DisposeAsync();
        _stop.Dispose();
        _wake.Dispose();
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
