using System.Buffers;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;
using ProxyGuard.Audit.Central;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit.Chain;

/// <summary>The result of checking one replica's chain: how many events were checked, and the first break, if any.</summary>
/// <param name="Source">What was checked: <c>local store PATH</c> or <c>replica ID</c>.</param>
/// <param name="Checked">Events whose hash was checked.</param>
/// <param name="BreakId">The local id at which the chain breaks, or null when it is intact.</param>
/// <param name="Problem">What differs there.</param>
public sealed record ChainReport(string Source, long Checked, long? BreakId, string? Problem)
{
    public bool Intact => BreakId is null;
}

/// <summary>
/// Checks hash chains: walks one replica's events in local-id order from the chain's anchor (the start, or the last
/// event retention deleted) and reports the first event that is missing, has no hash, or whose stored hash is not
/// SHA-256 of its predecessor's hash and its own contents; then that the newest event is the newest one recorded.
/// </summary>
public static class ChainVerifier
{
    private const int Page = 5000;

    /// <summary>Checks <c>events.db</c> in <paramref name="dataDirectory"/>, read-only (a running proxy may keep writing).</summary>
    /// <exception cref="EventStoreException">The database is missing or unreadable.</exception>
    public static ChainReport VerifyLocal(string dataDirectory)
    {
        var path = Path.GetFullPath(Path.Combine(dataDirectory, EventSchema.FileName));
        if (!File.Exists(path))
        {
            throw new EventStoreException($"no event database at {path} (use the proxy's --data-dir)");
        }

        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString();
        using var reader = new EventReader(connectionString);
        long lastId;
        try
        {
            using var connection = new SqliteConnection(connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = EventSchema.SelectLastId;
            lastId = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
        }
        catch (SqliteException ex)
        {
            throw new EventStoreException($"cannot read {path}: {EventWriter.OneLine(ex)}", ex);
        }

        var (anchorId, anchorHash) = reader.ReadAnchor();
        var walk = new Walk($"local store {path}", anchorId, anchorHash);
        long? behind;
        try
        {
            // Retention deletes every event up to the anchor in the transaction that moves it; only events from before
            // the chain existed (version 1, without hash) may stay behind it.
            using var connection = new SqliteConnection(connectionString);
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT min(id) FROM events WHERE id <= $anchor AND hash IS NOT NULL";
            command.Parameters.AddWithValue("$anchor", anchorId);
            behind = command.ExecuteScalar() is long id ? id : null;
        }
        catch (SqliteException ex)
        {
            throw new EventStoreException($"cannot read {path}: {EventWriter.OneLine(ex)}", ex);
        }

        walk.BehindAnchor(behind);
        var after = anchorId;
        while (walk.Problem is null)
        {
            var rows = reader.ReadStored(after, Page);
            foreach (var row in rows)
            {
                if (!walk.Add(row.Id, row.Event, row.Hash))
                {
                    break;
                }
            }

            if (rows.Count < Page)
            {
                break;
            }

            after = rows[^1].Id;
        }

        return walk.Finish(lastId, "the newest recorded id");
    }

    /// <summary>Checks every replica's chain in the central store.</summary>
    /// <exception cref="EventStoreException">PostgreSQL cannot be read.</exception>
    public static async Task<IReadOnlyList<ChainReport>> VerifyCentralAsync(string connectionString, string display, CancellationToken ct)
    {
        var reports = new List<ChainReport>();
        try
        {
            await using var source = NpgsqlDataSource.Create(connectionString);
            await using var connection = await source.OpenConnectionAsync(ct);
            var replicas = new List<(string Id, long Shipped, long AnchorId, byte[] AnchorHash)>();
            await using (var list = new NpgsqlCommand("SELECT replica_id, shipped_through, anchor_id, anchor_hash FROM proxyguard_replicas ORDER BY replica_id", connection))
            await using (var r = await list.ExecuteReaderAsync(ct))
            {
                while (await r.ReadAsync(ct))
                {
                    replicas.Add((r.GetString(0), r.GetInt64(1), r.GetInt64(2), (byte[])r.GetValue(3)));
                }
            }

            // Events stored for a replica without its registration (shipped cursor and anchor): the row was deleted.
            await using (var orphans = new NpgsqlCommand(
                "SELECT replica_id, min(local_id), count(*) FROM (SELECT replica_id, local_id FROM proxyguard_events " +
                "UNION ALL SELECT replica_id, local_id FROM proxyguard_ingest) AS t " +
                "WHERE NOT EXISTS (SELECT 1 FROM proxyguard_replicas r WHERE r.replica_id = t.replica_id) GROUP BY replica_id ORDER BY replica_id",
                connection))
            await using (var r = await orphans.ExecuteReaderAsync(ct))
            {
                while (await r.ReadAsync(ct))
                {
                    reports.Add(new ChainReport($"replica {r.GetString(0)}", 0, r.GetInt64(1),
                        $"{r.GetInt64(2)} events are stored for this replica but its registration (shipped cursor and chain anchor) is missing: it was deleted"));
                }
            }

            foreach (var (id, shipped, anchorId, anchorHash) in replicas)
            {
                var walk = new Walk($"replica {id}", anchorId, anchorHash);
                await using (var behind = new NpgsqlCommand(
                    "SELECT min(local_id) FROM (SELECT local_id FROM proxyguard_events WHERE replica_id = $1 AND local_id <= $2 " +
                    "UNION ALL SELECT local_id FROM proxyguard_ingest WHERE replica_id = $1 AND local_id <= $2) AS t",
                    connection))
                {
                    // Central retention deletes every event up to the anchor in the transaction that moves it, and a
                    // replica never ships what lies before its local anchor.
                    behind.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
                    behind.Parameters.Add(new NpgsqlParameter<long> { TypedValue = anchorId });
                    walk.BehindAnchor(await behind.ExecuteScalarAsync(ct) is long first ? first : null);
                }

                var after = anchorId;
                while (walk.Problem is null)
                {
                    // Sequenced rows and rows still waiting for their cursor, in local-id order.
                    await using var page = new NpgsqlCommand(
                        "SELECT " + CentralSchema.SelectColumns + " FROM (" +
                        "SELECT " + CentralSchema.SelectColumns + " FROM proxyguard_events WHERE replica_id = $1 AND local_id > $2 " +
                        "UNION ALL SELECT 0 AS seq, replica_id, local_id, " + CentralSchema.EventColumns + " FROM proxyguard_ingest i WHERE replica_id = $1 AND local_id > $2 " +
                        "AND NOT EXISTS (SELECT 1 FROM proxyguard_events e WHERE e.replica_id = i.replica_id AND e.local_id = i.local_id)" +
                        $") AS t ORDER BY local_id LIMIT {Page}",
                        connection);
                    page.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
                    page.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
                    var count = 0;
                    await using (var r = await page.ExecuteReaderAsync(ct))
                    {
                        while (await r.ReadAsync(ct))
                        {
                            count++;
                            var row = CentralStore.Map(r);
                            after = row.LocalId;
                            if (!walk.Add(row.LocalId, row.Event, row.Hash))
                            {
                                break;
                            }
                        }
                    }

                    if (count < Page)
                    {
                        break;
                    }
                }

                reports.Add(walk.Finish(shipped, "the newest id the replica shipped"));
            }
        }
        catch (Exception ex) when (CentralStore.IsStoreError(ex))
        {
            throw new EventStoreException($"cannot read the central event store {display}: {CentralStore.OneLine(ex)}", ex);
        }

        return reports;
    }

    /// <summary>The state of one chain walk.</summary>
    private sealed class Walk(string source, long anchorId, byte[] anchorHash)
    {
        private readonly ArrayBufferWriter<byte> _scratch = new(1024);
        private readonly long _anchorId = anchorId;
        private byte[] _previous = anchorHash;
        private long _expected = anchorId + 1;
        private long _checked;

        public long? BreakId { get; private set; }

        public string? Problem { get; private set; }

        /// <summary>
        /// A hashed event stored at or before the anchor: retention deletes those when it moves the anchor, so the
        /// anchor was moved over stored events (which the walk would otherwise leave unchecked).
        /// </summary>
        public void BehindAnchor(long? id)
        {
            if (id is long first)
            {
                Fail(first, $"event {first} is still stored at or before the chain's anchor ({_anchorId}): the anchor was moved over " +
                    "stored events (retention deletes every event up to the anchor)");
            }
        }

        /// <summary>Checks the next row; false once the chain is broken.</summary>
        public bool Add(long id, PreparedEvent e, byte[]? hash)
        {
            if (id != _expected)
            {
                return Fail(_expected, id == _expected + 1
                    ? $"event {_expected} is missing (deleted): the next stored event is {id}"
                    : $"events {_expected}..{id - 1} are missing (deleted): the next stored event is {id}");
            }

            if (hash is null)
            {
                return Fail(id, $"event {id} has no hash (its hash was removed)");
            }

            var computed = EventChain.Next(_previous, id, e, _scratch);
            if (!computed.AsSpan().SequenceEqual(hash))
            {
                return Fail(id, $"event {id} does not match its hash: its contents or its hash were changed " +
                    $"(stored {EventChain.Hex(hash)[..16]}..., computed {EventChain.Hex(computed)[..16]}...)");
            }

            _previous = hash;
            _expected++;
            _checked++;
            return true;
        }

        public ChainReport Finish(long newest, string what)
        {
            if (Problem is null && newest >= _expected)
            {
                Fail(_expected, newest == _expected
                    ? $"event {newest} ({what}) is missing (deleted)"
                    : $"events {_expected}..{newest} are missing (deleted; {newest} is {what})");
            }

            return new ChainReport(source, _checked, BreakId, Problem);
        }

        private bool Fail(long id, string problem)
        {
            BreakId = id;
            Problem = problem;
            return false;
        }
    }
}
