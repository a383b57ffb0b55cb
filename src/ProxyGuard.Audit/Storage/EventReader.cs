using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Storage;

/// <summary>
/// Queries on pooled read-only connections of their own. Each query is one statement, so it reads one WAL
/// snapshot; since the writer commits ids in increasing order, a snapshot always holds a prefix of the ids.
/// </summary>
internal sealed class EventReader : IDisposable
{
    private readonly string _connectionString;

    public EventReader(string connectionString)
    {
        _connectionString = connectionString;
    }

    public EventPage Query(EventQuery query)
    {
        var after = Math.Max(0, query.After);
        var limit = Math.Clamp(query.Limit, 1, EventQuery.MaxLimit);
        var events = new List<AuditEvent>(Math.Min(limit, 128));
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            var sql = new StringBuilder("SELECT ").Append(EventSchema.Columns).Append(" FROM events WHERE id > $after");
            command.Parameters.AddWithValue("$after", after);
            AddFilter(command, sql, "decision", query.Decision);
            AddFilter(command, sql, "client", query.Client);
            AddFilter(command, sql, "host", PreparedEvent.NormalizeHost(query.Host));
            sql.Append(" ORDER BY id LIMIT $limit");
            command.Parameters.AddWithValue("$limit", limit);
            command.CommandText = sql.ToString();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                events.Add(Map(reader));
            }
        }
        catch (Exception ex) when (ex is SqliteException or JsonException)
        {
            throw new EventStoreException("cannot read audit events: " + EventWriter.OneLine(ex), ex);
        }

        return new EventPage(events, events.Count > 0 ? events[^1].Id : after);
    }

    /// <summary>Stored rows with ids above <paramref name="after"/>, oldest first, as written (for shipping and verification).</summary>
    public List<StoredEvent> ReadStored(long after, int limit)
    {
        var rows = new List<StoredEvent>(Math.Min(limit, 1024));
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT " + EventSchema.ColumnsWithHash + " FROM events WHERE id > $after ORDER BY id LIMIT $limit";
            command.Parameters.AddWithValue("$after", after);
            command.Parameters.AddWithValue("$limit", limit);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                rows.Add(new StoredEvent(reader.GetInt64(0), MapPrepared(reader), reader.IsDBNull(20) ? null : (byte[])reader.GetValue(20)));
            }
        }
        catch (SqliteException ex)
        {
            throw new EventStoreException("cannot read audit events: " + EventWriter.OneLine(ex), ex);
        }

        return rows;
    }

    /// <summary>Stored checkpoints numbered above <paramref name="after"/> that cover events up to <paramref name="maxEventId"/>, in number order.</summary>
    public List<Chain.Checkpoint> ReadCheckpoints(long after, long maxEventId, int limit)
    {
        var rows = new List<Chain.Checkpoint>();
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT " + EventSchema.CheckpointColumns + " FROM checkpoints WHERE n > $after AND event_id <= $max ORDER BY n LIMIT $limit";
            command.Parameters.AddWithValue("$after", after);
            command.Parameters.AddWithValue("$max", maxEventId);
            command.Parameters.AddWithValue("$limit", limit);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                rows.Add(new Chain.Checkpoint(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), (byte[])reader.GetValue(3),
                    reader.GetInt64(4), (byte[])reader.GetValue(5), (byte[])reader.GetValue(6), (byte[])reader.GetValue(7)));
            }
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 1 && ex.Message.Contains("no such table", StringComparison.Ordinal))
        {
            // A store written before checkpoints existed.
        }
        catch (SqliteException ex)
        {
            throw new EventStoreException("cannot read checkpoints: " + EventWriter.OneLine(ex), ex);
        }

        return rows;
    }

    /// <summary>A value of the meta table (0 when absent).</summary>
    public long ReadMeta(string key)
    {
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT coalesce((SELECT value FROM meta WHERE key = $key), 0)";
            command.Parameters.AddWithValue("$key", key);
            return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (SqliteException ex)
        {
            throw new EventStoreException("cannot read the event store's metadata: " + EventWriter.OneLine(ex), ex);
        }
    }

    /// <summary>The chain anchor: the id and hash of the last event retention deleted (0 and zeros when none).</summary>
    public (long Id, byte[] Hash) ReadAnchor()
    {
        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = EventSchema.SelectAnchor;
            using var reader = command.ExecuteReader();
            return reader.Read() ? (reader.GetInt64(0), (byte[])reader.GetValue(1)) : (0, Chain.EventChain.Genesis);
        }
        catch (SqliteException ex)
        {
            throw new EventStoreException("cannot read the event chain anchor: " + EventWriter.OneLine(ex), ex);
        }
    }

    internal static PreparedEvent MapPrepared(SqliteDataReader r) => PreparedEvent.Read(r, 1);

    public void Dispose()
    {
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
    }

    private static void AddFilter(SqliteCommand command, StringBuilder sql, string column, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        sql.Append(" AND ").Append(column).Append(" = $").Append(column);
        command.Parameters.AddWithValue("$" + column, value);
    }

    private static AuditEvent Map(SqliteDataReader r) => MapPrepared(r).ToAuditEvent(r.GetInt64(0));
}
