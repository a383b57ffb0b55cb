using Npgsql;
using ProxyGuard.Policy.Grants;

namespace ProxyGuard.Engine.Grants;

/// <summary>
/// Grants kept in the central PostgreSQL store (the <c>--events-store</c>), so every replica creates, lists, revokes
/// and honours the same grants. Each replica reads the active ones about once a second; a revocation or expiry is
/// decided by one conditional update, so exactly one replica records it. Every call is bounded by short timeouts.
/// </summary>
internal sealed class CentralGrants : IDisposable
{
    private const string SchemaLock = "7021862143161017";

    private const string Columns = "id, client, host, port, methods, paths, created_ms, until_ms, created_by, why";

    private const string Create = $"""
        SELECT pg_advisory_xact_lock({SchemaLock});
        CREATE TABLE IF NOT EXISTS proxyguard_grants (
            id         text PRIMARY KEY,
            client     text NOT NULL,
            host       text NOT NULL,
            port       integer,
            methods    text NOT NULL,
            paths      text NOT NULL,
            created_ms bigint NOT NULL,
            until_ms   bigint NOT NULL,
            created_by text NOT NULL,
            why        text NOT NULL,
            state      text NOT NULL,
            ended_ms   bigint,
            ended_by   text
        );
        CREATE INDEX IF NOT EXISTS proxyguard_grants_active ON proxyguard_grants (state, until_ms);
        """;

    private readonly NpgsqlDataSource _source;
    private volatile bool _schema;

    public CentralGrants(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString)
        {
            ApplicationName = "proxyguard-grants",
            Timeout = 3,
            CommandTimeout = 3,
            MaxPoolSize = 4,
            ConnectionIdleLifetime = 60,
        };
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
    }

    public static bool IsStoreError(Exception ex) =>
        ex is NpgsqlException or TimeoutException or IOException or InvalidOperationException or System.Net.Sockets.SocketException or OperationCanceledException;

    public async Task<long> CountActiveAsync(long nowMs)
    {
        await EnsureAsync();
        await using var command = _source.CreateCommand("SELECT count(*) FROM proxyguard_grants WHERE state = 'active' AND until_ms > $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = nowMs });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public async Task InsertAsync(Grant g)
    {
        await EnsureAsync();
        await using var command = _source.CreateCommand($"""
            INSERT INTO proxyguard_grants ({Columns}, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active')
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = g.Id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = g.Client });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = g.Host });
        command.Parameters.Add(new NpgsqlParameter { Value = g.Port is { } p ? p : DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = string.Join(',', g.Methods) });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = string.Join('\n', g.Paths) });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = g.Created.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = g.Until.ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = g.By });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = g.Why });
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Ends one active grant (revocation); the grant, or null when no active grant has this id.</summary>
    public async Task<Grant?> RevokeAsync(string id, string by, long nowMs)
    {
        await EnsureAsync();
        await using var command = _source.CreateCommand($"""
            UPDATE proxyguard_grants SET state = 'revoked', ended_ms = $3, ended_by = $2
            WHERE id = $1 AND state = 'active' AND until_ms > $3 RETURNING {Columns}
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = by });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = nowMs });
        var rows = await ReadAsync(command);
        return rows.Count == 0 ? null : rows[0];
    }

    /// <summary>Marks the grants whose time is up as expired; returns those this call ended (each is ended once, fleet-wide).</summary>
    public async Task<List<Grant>> ExpireAsync(long nowMs)
    {
        await EnsureAsync();
        await using var command = _source.CreateCommand($"""
            UPDATE proxyguard_grants SET state = 'expired', ended_ms = until_ms, ended_by = 'proxyguard'
            WHERE state = 'active' AND until_ms <= $1 RETURNING {Columns}
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = nowMs });
        return await ReadAsync(command);
    }

    public async Task<List<Grant>> ActiveAsync(long nowMs)
    {
        await EnsureAsync();
        await using var command = _source.CreateCommand($"SELECT {Columns} FROM proxyguard_grants WHERE state = 'active' AND until_ms > $1 ORDER BY created_ms, id");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = nowMs });
        return await ReadAsync(command);
    }

    public void Dispose() => _source.Dispose();

    private static async Task<List<Grant>> ReadAsync(NpgsqlCommand command)
    {
        var grants = new List<Grant>();
        await using var r = await command.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            grants.Add(new Grant(
                r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetInt32(3),
                r.GetString(4).Split(',', StringSplitOptions.RemoveEmptyEntries), r.GetString(5).Split('\n', StringSplitOptions.RemoveEmptyEntries),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7)),
                r.GetString(8), r.GetString(9)));
        }

        return grants;
    }

    private async Task EnsureAsync()
    {
        if (_schema)
        {
            return;
        }

        await using var connection = await _source.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using (var create = new NpgsqlCommand(Create, connection, tx))
        {
            await create.ExecuteNonQueryAsync();
        }

        await tx.CommitAsync();
        _schema = true;
    }
}
