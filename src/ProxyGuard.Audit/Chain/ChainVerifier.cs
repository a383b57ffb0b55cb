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

    /// <summary>The newest id whose hash was checked (the anchor's id when none was).</summary>
    public long Last { get; init; }

    /// <summary>Signed checkpoints whose signature, numbering and link were checked (with public keys only).</summary>
    public long Checkpoints { get; init; }

    /// <summary>The newest checked checkpoint, or null.</summary>
    public Checkpoint? NewestCheckpoint { get; init; }

    /// <summary>True when public keys were given, so checkpoints were checked.</summary>
    public bool CheckpointsChecked { get; init; }
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
    public static ChainReport VerifyLocal(string dataDirectory, CheckpointKeys? keys = null)
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
        if (keys is not null)
        {
            var checkpoints = reader.ReadCheckpoints(0, long.MaxValue, int.MaxValue);
            walk.Checkpoints(checkpoints, checkpoints.Count > 0 ? checkpoints[0].ReplicaId : string.Empty, keys);
        }

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

        if (walk.Problem is null)
        {
            walk.BehindAnchor(behind);
        }

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
    /// <param name="keys">Public keys: also check every replica's signed checkpoints against its chain.</param>
    /// <param name="witness">A replica's data directory: also compare that replica's central chain with its local store.</param>
    /// <param name="witnessReplica">That replica's id (default: its <c>replica.id</c> file, else the replica its checkpoints name).</param>
    public static async Task<IReadOnlyList<ChainReport>> VerifyCentralAsync(string connectionString, string display, CancellationToken ct,
        CheckpointKeys? keys = null, string? witness = null, string? witnessReplica = null)
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

            // Events (or checkpoints) stored for a replica without its registration (shipped cursor and anchor): the row was deleted.
            await using (var orphans = new NpgsqlCommand(
                "SELECT replica_id, min(local_id), count(*) FROM (SELECT replica_id, local_id FROM proxyguard_events " +
                "UNION ALL SELECT replica_id, local_id FROM proxyguard_ingest UNION ALL SELECT replica_id, local_id FROM proxyguard_checkpoints) AS t " +
                "WHERE NOT EXISTS (SELECT 1 FROM proxyguard_replicas r WHERE r.replica_id = t.replica_id) GROUP BY replica_id ORDER BY replica_id",
                connection))
            await using (var r = await orphans.ExecuteReaderAsync(ct))
            {
                while (await r.ReadAsync(ct))
                {
                    reports.Add(new ChainReport($"replica {r.GetString(0)}", 0, r.GetInt64(1),
                        $"{r.GetInt64(2)} events (or checkpoints) are stored for this replica but its registration (shipped cursor and chain anchor) is missing: it was deleted"));
                }
            }

            foreach (var (id, shipped, anchorId, anchorHash) in replicas)
            {
                var walk = new Walk($"replica {id}", anchorId, anchorHash);
                if (keys is not null)
                {
                    walk.Checkpoints(await ReadCentralCheckpointsAsync(connection, id, ct), id, keys);
                }

                await using (var behind = new NpgsqlCommand(
                    "SELECT min(local_id) FROM (SELECT local_id FROM proxyguard_events WHERE replica_id = $1 AND local_id <= $2 " +
                    "UNION ALL SELECT local_id FROM proxyguard_ingest WHERE replica_id = $1 AND local_id <= $2) AS t",
                    connection))
                {
                    // Central retention deletes every event up to the anchor in the transaction that moves it, and a
                    // replica never ships what lies before its local anchor.
                    behind.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
                    behind.Parameters.Add(new NpgsqlParameter<long> { TypedValue = anchorId });
                    var first = await behind.ExecuteScalarAsync(ct) is long stored ? stored : (long?)null;
                    if (walk.Problem is null)
                    {
                        walk.BehindAnchor(first);
                    }
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
                            if (!walk.Add(row.LocalId, row.Event, row.Hash, row.Seq))
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

            if (await CheckCursorAsync(connection, ct) is { } cursor)
            {
                reports.Add(cursor);
            }

            if (witness is not null)
            {
                reports.AddRange(await CompareWithLocalAsync(connection, witness, witnessReplica, reports, keys, ct));
            }
        }
        catch (Exception ex) when (CentralStore.IsStoreError(ex))
        {
            throw new EventStoreException($"cannot read the central event store {display}: {CentralStore.OneLine(ex)}", ex);
        }

        return reports;
    }

    private static async Task<List<Checkpoint>> ReadCentralCheckpointsAsync(NpgsqlConnection connection, string replicaId, CancellationToken ct)
    {
        var list = new List<Checkpoint>();
        await using var command = new NpgsqlCommand("SELECT " + CentralSchema.CheckpointColumns + " FROM proxyguard_checkpoints WHERE replica_id = $1 ORDER BY n", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replicaId });
        await using var r = await command.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            list.Add(new Checkpoint(r.GetString(0), r.GetInt64(1), r.GetInt64(2), (byte[])r.GetValue(3), r.GetInt64(4), (byte[])r.GetValue(5),
                (byte[])r.GetValue(6), (byte[])r.GetValue(7)));
        }

        return list;
    }

    /// <summary>
    /// The central cursor: retention deletes a prefix and the sequencer numbers without gaps, so the stored cursor
    /// values run from the smallest to the last one handed out without a hole. A moved event leaves one.
    /// </summary>
    private static async Task<ChainReport?> CheckCursorAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0), (SELECT last_seq FROM proxyguard_sequence WHERE id = 1) FROM proxyguard_events", connection);
        await using var r = await command.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct))
        {
            return null;
        }

        var (count, min, max, last) = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.IsDBNull(3) ? 0 : r.GetInt64(3));
        if (count == 0 || (count == max - min + 1 && max <= last))
        {
            return null;
        }

        return new ChainReport("central cursor", 0, max, max > last
            ? $"an event has cursor {max}, beyond the last cursor value handed out ({last}): events were renumbered"
            : $"{max - min + 1 - count} cursor values between {min} and {max} have no event: events were deleted or renumbered");
    }

    /// <summary>
    /// R5-6: the replica's own store is a witness outside the database. Its local chain is checked too; then what it
    /// says it shipped (events and checkpoints) must be in the central store, with the same hash at the newest event both hold.
    /// </summary>
    private static async Task<List<ChainReport>> CompareWithLocalAsync(NpgsqlConnection connection, string dataDirectory, string? replicaId,
        List<ChainReport> central, CheckpointKeys? keys, CancellationToken ct)
    {
        var local = VerifyLocal(dataDirectory, keys);
        var path = Path.GetFullPath(Path.Combine(dataDirectory, EventSchema.FileName));
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString();
        using var reader = new EventReader(connectionString);
        var idFile = Path.Combine(dataDirectory, CentralConnection.ReplicaIdFileName);
        if (string.IsNullOrEmpty(replicaId) && File.Exists(idFile))
        {
            try
            {
                replicaId = File.ReadAllText(idFile).Trim();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new EventStoreException($"--data-dir: cannot read the replica id ({idFile}): {EventWriter.OneLine(ex)}", ex);
            }
        }

        if (string.IsNullOrEmpty(replicaId) && reader.ReadCheckpoints(0, long.MaxValue, int.MaxValue) is [.., var newest])
        {
            replicaId = newest.ReplicaId;
        }

        if (string.IsNullOrEmpty(replicaId))
        {
            throw new EventStoreException($"--data-dir: {dataDirectory} has no {CentralConnection.ReplicaIdFileName}: name the replica with --replica-id");
        }

        var source = $"replica {replicaId} against its local store {path}";
        var shipped = reader.ReadMeta("shipped");
        var checkpointsShipped = reader.ReadMeta("checkpoints_shipped");
        var (localAnchor, _) = reader.ReadAnchor();
        var report = central.FirstOrDefault(r => r.Source == $"replica {replicaId}");
        ChainReport Broken(long id, string problem) => new(source, 0, id, problem);

        if (report is null)
        {
            return [local, shipped > 0
                ? Broken(1, $"the local store says events up to {shipped} were shipped, but the central store holds no event and no registration of this replica: they were deleted")
                : new ChainReport(source, 0, null, null)];
        }

        if (!report.Intact)
        {
            return [local]; // the central chain is already reported broken
        }

        if (report.Last < shipped)
        {
            return [local, Broken(report.Last + 1, $"the central chain ends at event {report.Last}, but the local store says events up to {shipped} were shipped: " +
                $"events {report.Last + 1}..{shipped} were deleted centrally (and the shipped cursor lowered)")];
        }

        long centralCheckpoints;
        byte[]? centralHash = null;
        var common = Math.Min(report.Last, shipped);
        await using (var command = new NpgsqlCommand(
            "SELECT coalesce((SELECT max(n) FROM proxyguard_checkpoints WHERE replica_id = $1), 0), " +
            "(SELECT hash FROM proxyguard_events WHERE replica_id = $1 AND local_id = $2 UNION ALL SELECT hash FROM proxyguard_ingest WHERE replica_id = $1 AND local_id = $2 LIMIT 1)",
            connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replicaId });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = common });
            await using var r = await command.ExecuteReaderAsync(ct);
            await r.ReadAsync(ct);
            centralCheckpoints = r.GetInt64(0);
            centralHash = r.IsDBNull(1) ? null : (byte[])r.GetValue(1);
        }

        if (centralCheckpoints < checkpointsShipped)
        {
            return [local, Broken(common, $"the local store says signed checkpoints up to {checkpointsShipped} were shipped, " +
                $"but the central store holds only up to {centralCheckpoints}: checkpoints were deleted centrally")];
        }

        if (common > localAnchor && centralHash is not null && reader.ReadStored(common - 1, 1) is [var row] && row.Id == common
            && row.Hash is { } localHash && !localHash.AsSpan().SequenceEqual(centralHash))
        {
            return [local, Broken(common, $"event {common} has a different chain hash centrally than in the local store: one of the two histories was rewritten")];
        }

        return [local, new ChainReport(source, report.Checked, null, null) { Last = report.Last }];
    }

    /// <summary>The state of one chain walk.</summary>
    private sealed class Walk(string source, long anchorId, byte[] anchorHash)
    {
        private readonly ArrayBufferWriter<byte> _scratch = new(1024);
        private readonly long _anchorId = anchorId;
        private byte[] _previous = anchorHash;
        private long _expected = anchorId + 1;
        private long _checked;
        private long _lastSeq;
        private Dictionary<long, Checkpoint>? _covered;
        private Checkpoint? _newestCheckpoint;
        private long _checkpoints;
        private bool _checkpointsChecked;

        /// <summary>
        /// Checks the replica's signed checkpoints (signature under a trusted key, the replica they name, numbering
        /// without gap, each linked to the one before) and records which event hashes they vouch for; the walk then
        /// checks those hashes and that the chain reaches the newest checkpoint.
        /// </summary>
        public void Checkpoints(List<Checkpoint> checkpoints, string replicaId, CheckpointKeys keys)
        {
            _checkpointsChecked = true;
            _covered = [];
            Checkpoint? previous = null;
            foreach (var c in checkpoints)
            {
                if (keys.Check(c) is { } bad)
                {
                    Fail(c.EventId, bad);
                    return;
                }

                if (c.ReplicaId != replicaId)
                {
                    Fail(c.EventId, $"checkpoint {c.Number} was signed for replica '{c.ReplicaId}', not this one: it was copied here");
                    return;
                }

                if (previous is null)
                {
                    if (c.Number == 1 ? !c.Previous.AsSpan().SequenceEqual(EventChain.Genesis) : c.EventId > _anchorId)
                    {
                        Fail(c.EventId, c.Number == 1
                            ? "checkpoint 1 links to an earlier checkpoint: it is not this chain's first"
                            : $"checkpoints before {c.Number} are missing (deleted), though checkpoint {c.Number} covers an event after the anchor ({_anchorId})");
                        return;
                    }
                }
                else if (c.Number != previous.Number + 1)
                {
                    Fail(c.EventId, $"checkpoints {previous.Number + 1}..{c.Number - 1} are missing (deleted): the next stored checkpoint is {c.Number}");
                    return;
                }
                else if (!c.Previous.AsSpan().SequenceEqual(previous.Hash()) || c.EventId < previous.EventId)
                {
                    Fail(c.EventId, $"checkpoint {c.Number} does not follow checkpoint {previous.Number}: checkpoints were replaced or reordered");
                    return;
                }

                if (c.EventId > _anchorId)
                {
                    _covered[c.EventId] = c;
                }
                else if (c.EventId == _anchorId && _anchorId > 0 && !c.EventHash.AsSpan().SequenceEqual(_previous))
                {
                    Fail(c.EventId, $"the chain's anchor ({_anchorId}) has a different hash than signed checkpoint {c.Number} says: the anchor was changed");
                    return;
                }

                previous = c;
                _checkpoints++;
            }

            _newestCheckpoint = previous;
        }

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
        public bool Add(long id, PreparedEvent e, byte[]? hash, long seq = 0)
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

            if (seq > 0)
            {
                if (seq <= _lastSeq)
                {
                    return Fail(id, $"event {id} has cursor {seq}, which is not after the cursor of the replica's event before it ({_lastSeq}): " +
                        "the replica's events were reordered in the cursor");
                }

                _lastSeq = seq;
            }

            if (_covered is not null && _covered.TryGetValue(id, out var checkpoint) && !checkpoint.EventHash.AsSpan().SequenceEqual(hash))
            {
                return Fail(id, $"event {id} is not the event signed checkpoint {checkpoint.Number} ({checkpoint.Time:yyyy-MM-dd HH:mm:ss}Z) vouches for: " +
                    "the chain was rewritten from here on (its hashes recomputed)");
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

            // With public keys every replica's events must be vouched for: checkpointing signs one with a replica's first
            // event (and retention keeps the newest checkpoint at its anchor), so events without any checkpoint were
            // written unsigned, or their checkpoints were deleted or moved to another name.
            if (Problem is null && _checkpointsChecked && _checkpoints == 0 && _checked > 0)
            {
                Fail(_expected - _checked, $"no signed checkpoint vouches for this replica's {_checked} events: its checkpoints were deleted " +
                    "or renamed, or it ran without --events-checkpoints (verify it without --public-key to check the unsigned chain only)");
            }

            if (Problem is null && _newestCheckpoint is { } signed && signed.EventId >= _expected)
            {
                Fail(_expected, $"events {_expected}..{signed.EventId} are missing (deleted): signed checkpoint {signed.Number} " +
                    $"({signed.Time:yyyy-MM-dd HH:mm:ss}Z) covers event {signed.EventId}, but the chain ends at {_expected - 1}");
            }

            return new ChainReport(source, _checked, BreakId, Problem)
            {
                Last = _expected - 1,
                Checkpoints = _checkpoints,
                NewestCheckpoint = _newestCheckpoint,
                CheckpointsChecked = _checkpointsChecked,
            };
        }

        private bool Fail(long id, string problem)
        {
            BreakId = id;
            Problem = problem;
            return false;
        }
    }
}
