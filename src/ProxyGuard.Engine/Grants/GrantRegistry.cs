using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Logging;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Grants;

namespace ProxyGuard.Engine.Grants;

/// <summary>
/// The operator's time-boxed grants: persisted in <c>grants.db</c> (SQLite, mode 0600) in the data directory so they
/// survive a restart, bounded in number, and published as one immutable <see cref="GrantSet"/> that the decider reads.
/// Every creation, revocation and expiry is an audit event of kind <c>grant</c> (who, what, why, until when); a
/// grant whose creation event cannot be recorded is not created. Expiry is exact in the decision (a grant stops
/// matching at its end time); a sweep once a second records the expiry event and drops it from the set.
/// </summary>
internal sealed class GrantRegistry : IDisposable
{
    public const string FileName = "grants.db";

    /// <summary>Ended grants kept in the database for <c>GET /api/grants?all=1</c>; older ones are deleted.</summary>
    private const int MaxHistory = 1000;

    private readonly SqliteConnection _db;
    private readonly AuditSink _audit;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly int _maxActive;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _sweeping = new(1, 1);
    private readonly ITimer _sweep;
    private GrantSet _current = GrantSet.Empty;
    private CentralGrants? _central;
    private long _centralReadAt;

    /// <summary>With a central store: the cached grants are dropped when they could not be read again for this long.</summary>
    public static readonly TimeSpan CentralStaleAfter = TimeSpan.FromSeconds(5);

    private GrantRegistry(SqliteConnection db, AuditSink audit, ILogger logger, TimeProvider time, int maxActive)
    {
        _db = db;
        _audit = audit;
        _logger = logger;
        _time = time;
        _maxActive = maxActive;
        _sweep = time.CreateTimer(_ => _ = SweepAsync(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>The active grants (read once per decision).</summary>
    public GrantSet Current => Volatile.Read(ref _current);

    public DateTimeOffset Now => _time.GetUtcNow();

    public int MaxActive => _maxActive;

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "The connection is owned by the returned registry.")]
    public static GrantRegistry Open(string dataDirectory, AuditSink audit, ILogger logger, int maxActive, TimeProvider? time = null, string? centralConnectionString = null)
    {
        var path = Path.GetFullPath(Path.Combine(dataDirectory, FileName));
        if (FilePermissions.CheckPrivateFile(path, "grants database") is { } refusal)
        {
            throw new UnauthorizedAccessException(refusal);
        }

        if (!File.Exists(path))
        {
            // Created 0600 before SQLite opens it (SQLite gives its journal the database's mode).
            using var _ = OperatingSystem.IsWindows()
                ? new FileStream(path, FileMode.CreateNew)
                : new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew,
                    Access = FileAccess.Write,
                    UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
        }

        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        try
        {
            db.Open();
            Execute(db, """
                PRAGMA busy_timeout = 5000;
                CREATE TABLE IF NOT EXISTS grants (
                    id        TEXT PRIMARY KEY,
                    client    TEXT NOT NULL,
                    host      TEXT NOT NULL,
                    port      INTEGER,
                    methods   TEXT NOT NULL,
                    paths     TEXT NOT NULL,
                    created   INTEGER NOT NULL,
                    until     INTEGER NOT NULL,
                    by        TEXT NOT NULL,
                    why       TEXT NOT NULL,
                    state     TEXT NOT NULL,
                    ended     INTEGER,
                    ended_by  TEXT
                );
                """);
        }
        catch (SqliteException ex)
        {
            db.Dispose();
            throw new InvalidOperationException($"cannot open the grants database {path}: {ex.Message}", ex);
        }

        var registry = new GrantRegistry(db, audit, logger, time ?? TimeProvider.System, maxActive);
        if (centralConnectionString is not null)
        {
            // R7F-4: with a central store the grants are the fleet's, in PostgreSQL; grants.db is not read.
            registry._central = new CentralGrants(centralConnectionString);
            registry._centralReadAt = registry.Now.UtcTicks;
            return registry;
        }

        registry.Load();
        return registry;
    }

    /// <summary>Active grants, oldest first.</summary>
    public IReadOnlyList<Grant> List() => [.. Current.Grants.Select(g => g.Grant).Where(g => g.Until > Now)];

    /// <summary>Active grants, oldest first; with a central store, the fleet's as PostgreSQL holds them now.</summary>
    /// <exception cref="InvalidOperationException">The central grant store cannot be reached.</exception>
    public async Task<IReadOnlyList<Grant>> ListAsync()
    {
        if (_central is not { } central)
        {
            return List();
        }

        try
        {
            return await central.ActiveAsync(Now.ToUnixTimeMilliseconds());
        }
        catch (Exception ex) when (CentralGrants.IsStoreError(ex))
        {
            throw new InvalidOperationException("the central grant store is unreachable; retry", ex);
        }
    }

    /// <summary>Creates a grant; returns it, or the one-line reason it was refused (<paramref name="status"/> 400, 409 or 503).</summary>
    public async Task<(Grant? Grant, string? Error, int Status)> AddAsync(
        string? client, string? host, IReadOnlyList<string>? methods, IReadOnlyList<string>? paths, TimeSpan duration, string? why, string by)
    {
        var id = "g" + Convert.ToHexString(RandomNumberGenerator.GetBytes(5)).ToLowerInvariant();
        var error = Grant.TryCreate(id, client, host, methods, paths, duration, why, by, Now, out var compiled);
        if (error is not null)
        {
            return (null, error, 400);
        }

        var grant = compiled!.Grant;
        if (_central is { } central)
        {
            return await AddCentralAsync(central, compiled, by);
        }

        lock (_lock)
        {
            if (_current.Grants.Count(g => g.Grant.Until > Now) >= _maxActive)
            {
                return (null, $"too many active grants (at most {_maxActive}); revoke one or put lasting access in the policy", 409);
            }
        }

        // The creation is recorded before the grant takes effect: an unrecorded grant is never active.
        if (!await _audit.RecordRequiredAsync(Event(grant, "created", by)))
        {
            return (null, "the audit store cannot record the grant, so it was not created", 503);
        }

        lock (_lock)
        {
            using var insert = _db.CreateCommand();
            insert.CommandText = """
                INSERT INTO grants (id, client, host, port, methods, paths, created, until, by, why, state)
                VALUES ($id, $client, $host, $port, $methods, $paths, $created, $until, $by, $why, 'active')
                """;
            insert.Parameters.AddWithValue("$id", grant.Id);
            insert.Parameters.AddWithValue("$client", grant.Client);
            insert.Parameters.AddWithValue("$host", grant.Host);
            insert.Parameters.AddWithValue("$port", grant.Port is { } p ? p : DBNull.Value);
            insert.Parameters.AddWithValue("$methods", string.Join(',', grant.Methods));
            insert.Parameters.AddWithValue("$paths", string.Join('\n', grant.Paths));
            insert.Parameters.AddWithValue("$created", grant.Created.ToUnixTimeMilliseconds());
            insert.Parameters.AddWithValue("$until", grant.Until.ToUnixTimeMilliseconds());
            insert.Parameters.AddWithValue("$by", grant.By);
            insert.Parameters.AddWithValue("$why", grant.Why);
            insert.ExecuteNonQuery();
            Publish([.. _current.Grants, compiled]);
        }

        EngineLog.GrantCreated(_logger, grant.Id, grant.Client, Grant.FormatHost(grant.Host, grant.Port), grant.Until.ToString("O", CultureInfo.InvariantCulture), by);
        return (grant, null, 201);
    }

    /// <summary>Revokes an active grant; null when no active grant has this id.</summary>
    /// <exception cref="InvalidOperationException">The central grant store cannot be reached: nothing was revoked.</exception>
    public async Task<Grant?> RevokeAsync(string id, string by)
    {
        Grant? grant;
        if (_central is { } central)
        {
            try
            {
                grant = await central.RevokeAsync(id, by, Now.ToUnixTimeMilliseconds());
            }
            catch (Exception ex) when (CentralGrants.IsStoreError(ex))
            {
                throw new InvalidOperationException("the central grant store is unreachable; the grant was not revoked, retry", ex);
            }

            if (grant is null)
            {
                return null;
            }

            lock (_lock)
            {
                Publish(_current.Grants.Where(g => g.Grant.Id != id));
            }

            EngineLog.GrantEnded(_logger, grant.Id, "revoked", by);
            await _audit.RecordRequiredAsync(Event(grant, "revoked", by));
            return grant;
        }

        lock (_lock)
        {
            grant = _current.Grants.Select(g => g.Grant).FirstOrDefault(g => g.Id == id);
            if (grant is null)
            {
                return null;
            }

            End(grant.Id, "revoked", by);
            Publish(_current.Grants.Where(g => g.Grant.Id != id));
        }

        EngineLog.GrantEnded(_logger, grant.Id, "revoked", by);
        await _audit.RecordRequiredAsync(Event(grant, "revoked", by));
        return grant;
    }

    /// <summary>Ends the grants whose time is up and records their expiry (also run at start).</summary>
    public async Task SweepAsync()
    {
        if (!await _sweeping.WaitAsync(0))
        {
            return;
        }

        if (_central is { } central)
        {
            try
            {
                await SweepCentralAsync(central);
            }
            finally
            {
                _sweeping.Release();
            }

            return;
        }

        try
        {
            List<Grant> expired;
            lock (_lock)
            {
                var now = Now;
                expired = [.. _current.Grants.Select(g => g.Grant).Where(g => g.Until <= now)];
                if (expired.Count == 0)
                {
                    return;
                }

                foreach (var g in expired)
                {
                    End(g.Id, "expired", "proxyguard");
                }

                Publish(_current.Grants.Where(g => g.Grant.Until > now));
            }

            foreach (var g in expired)
            {
                EngineLog.GrantEnded(_logger, g.Id, "expired", "proxyguard");
                await _audit.RecordRequiredAsync(Event(g, "expired", "proxyguard"));
            }
        }
        catch (Exception ex) when (ex is SqliteException or InvalidOperationException)
        {
            EngineLog.GrantSweepFailed(_logger, ex.Message);
        }
        finally
        {
            _sweeping.Release();
        }
    }

    public void Dispose()
    {
        _sweep.Dispose();
        _central?.Dispose();
        lock (_lock)
        {
            _db.Dispose();
        }

        _sweeping.Dispose();
    }

    /// <summary>Central grants: creation is recorded first (an unrecorded grant is never active), then stored fleet-wide.</summary>
    private async Task<(Grant? Grant, string? Error, int Status)> AddCentralAsync(CentralGrants central, CompiledGrant compiled, string by)
    {
        var grant = compiled.Grant;
        try
        {
            if (await central.CountActiveAsync(Now.ToUnixTimeMilliseconds()) >= _maxActive)
            {
                return (null, $"too many active grants (at most {_maxActive}); revoke one or put lasting access in the policy", 409);
            }
        }
        catch (Exception ex) when (CentralGrants.IsStoreError(ex))
        {
            return (null, "the central grant store is unreachable, so the grant was not created", 503);
        }

        if (!await _audit.RecordRequiredAsync(Event(grant, "created", by)))
        {
            return (null, "the audit store cannot record the grant, so it was not created", 503);
        }

        try
        {
            await central.InsertAsync(grant);
        }
        catch (Exception ex) when (CentralGrants.IsStoreError(ex))
        {
            // Recorded as created but never stored: record its end so the audit trail says it never took effect.
            await _audit.RecordRequiredAsync(Event(grant, "revoked", "proxyguard"));
            return (null, "the central grant store is unreachable, so the grant was not created", 503);
        }

        lock (_lock)
        {
            Publish([.. _current.Grants.Where(g => g.Grant.Id != grant.Id), compiled]);
        }

        EngineLog.GrantCreated(_logger, grant.Id, grant.Client, Grant.FormatHost(grant.Host, grant.Port), grant.Until.ToString("O", CultureInfo.InvariantCulture), by);
        return (grant, null, 201);
    }

    /// <summary>
    /// Central grants, once a second: ends the expired ones (each recorded by the one replica whose update ended it) and
    /// reads the active set again, so a revocation through any replica takes effect here within about a second. When
    /// the store cannot be read for <see cref="CentralStaleAfter"/>, the cached grants are dropped (fail closed).
    /// </summary>
    private async Task SweepCentralAsync(CentralGrants central)
    {
        var now = Now;
        try
        {
            var expired = await central.ExpireAsync(now.ToUnixTimeMilliseconds());
            var active = await central.ActiveAsync(now.ToUnixTimeMilliseconds());
            var compiled = active.Select(Grant.Compile).OfType<CompiledGrant>().ToList();
            lock (_lock)
            {
                Publish(compiled);
            }

            Interlocked.Exchange(ref _centralReadAt, now.UtcTicks);
            foreach (var g in expired)
            {
                EngineLog.GrantEnded(_logger, g.Id, "expired", "proxyguard");
                await _audit.RecordRequiredAsync(Event(g, "expired", "proxyguard"));
            }
        }
        catch (Exception ex) when (CentralGrants.IsStoreError(ex))
        {
            EngineLog.GrantSweepFailed(_logger, "central grant store: " + ex.Message.ReplaceLineEndings(" "));
            if (now.UtcTicks - Interlocked.Read(ref _centralReadAt) > CentralStaleAfter.Ticks)
            {
                lock (_lock)
                {
                    Publish([]);
                }
            }
        }
    }

    private void Load()
    {
        var loaded = new List<CompiledGrant>();
        lock (_lock)
        {
            using var select = _db.CreateCommand();
            select.CommandText = "SELECT id, client, host, port, methods, paths, created, until, by, why FROM grants WHERE state = 'active' ORDER BY created";
            using var r = select.ExecuteReader();
            while (r.Read())
            {
                var stored = new Grant(
                    r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetInt32(3),
                    r.GetString(4).Split(',', StringSplitOptions.RemoveEmptyEntries), r.GetString(5).Split('\n', StringSplitOptions.RemoveEmptyEntries),
                    DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7)),
                    r.GetString(8), r.GetString(9));
                if (Grant.Compile(stored) is { } compiled)
                {
                    loaded.Add(compiled);
                }
            }

            Publish(loaded);
        }
    }

    private void End(string id, string state, string by)
    {
        using var update = _db.CreateCommand();
        update.CommandText = "UPDATE grants SET state = $state, ended = $ended, ended_by = $by WHERE id = $id AND state = 'active'";
        update.Parameters.AddWithValue("$state", state);
        update.Parameters.AddWithValue("$ended", Now.ToUnixTimeMilliseconds());
        update.Parameters.AddWithValue("$by", by);
        update.Parameters.AddWithValue("$id", id);
        update.ExecuteNonQuery();
        using var trim = _db.CreateCommand();
        trim.CommandText = "DELETE FROM grants WHERE state <> 'active' AND id NOT IN (SELECT id FROM grants WHERE state <> 'active' ORDER BY ended DESC LIMIT $keep)";
        trim.Parameters.AddWithValue("$keep", MaxHistory);
        trim.ExecuteNonQuery();
    }

    private void Publish(IEnumerable<CompiledGrant> grants) => Volatile.Write(ref _current, new GrantSet(grants));

    /// <summary>The audit event of a grant's creation, revocation or expiry: what (client, host, port, methods, paths), who, why, until when.</summary>
    private AuditEvent Event(Grant grant, string action, string by) => new()
    {
        Time = Now,
        Kind = AuditKinds.Grant,
        Client = grant.Client,
        Host = grant.Host,
        Port = grant.Port ?? 0,
        Method = grant.Methods.Count == 0 ? null : string.Join(',', grant.Methods),
        Path = grant.Paths.Count == 0 ? null : string.Join(' ', grant.Paths),
        Decision = action == "created" ? AuditDecisions.Allow : AuditDecisions.Deny,
        Rule = grant.RuleName,
        Reason = "grant-" + action,
        Grant = new AuditGrant(grant.Id, action, by, grant.Why, action == "created" ? grant.Until : Min(grant.Until, Now)),
    };

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static void Execute(SqliteConnection db, string sql)
    {
        using var command = db.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
