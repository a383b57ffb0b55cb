namespace ProxyGuard.Audit.Storage;

/// <summary>
/// SQL of the event database. Version 2 added <c>grant_info</c> (grant events), the hash chain (<c>events.hash</c>,
/// the <c>chain</c> anchor left by retention) and the <c>shipped</c> cursor of the central store's outbox; a version 1
/// database is migrated on open (its older events stay without hash: the anchor starts the chain after them).
/// </summary>
internal static class EventSchema
{
    public const int Version = 2;

    public const string FileName = "events.db";

    public const string Create = """
        CREATE TABLE IF NOT EXISTS events (
            id             INTEGER PRIMARY KEY,
            time_us        INTEGER NOT NULL,
            client         TEXT,
            client_address TEXT,
            kind           TEXT NOT NULL,
            method         TEXT,
            scheme         TEXT,
            host           TEXT NOT NULL,
            port           INTEGER NOT NULL,
            path           TEXT,
            decision       TEXT NOT NULL,
            rule           TEXT,
            reason         TEXT,
            findings       TEXT,
            secrets        TEXT,
            status         INTEGER,
            request_bytes  INTEGER NOT NULL,
            response_bytes INTEGER NOT NULL,
            duration_ms    REAL NOT NULL,
            grant_info     TEXT,
            hash           BLOB
        );
        CREATE INDEX IF NOT EXISTS events_decision ON events (decision, id);
        CREATE INDEX IF NOT EXISTS events_client ON events (client, id);
        CREATE INDEX IF NOT EXISTS events_host ON events (host, id);
        CREATE TABLE IF NOT EXISTS meta (
            key   TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO meta (key, value) VALUES ('last_id', 0);
        INSERT OR IGNORE INTO meta (key, value) VALUES ('shipped', 0);
        CREATE TABLE IF NOT EXISTS chain (
            key  TEXT PRIMARY KEY,
            id   INTEGER NOT NULL,
            hash BLOB NOT NULL
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO chain (key, id, hash) VALUES ('anchor', 0, zeroblob(32));
        INSERT OR IGNORE INTO meta (key, value) VALUES ('checkpoints_shipped', 0);
        CREATE TABLE IF NOT EXISTS checkpoints (
            n          INTEGER PRIMARY KEY,
            replica_id TEXT NOT NULL,
            event_id   INTEGER NOT NULL,
            event_hash BLOB NOT NULL,
            time_us    INTEGER NOT NULL,
            previous   BLOB NOT NULL,
            key_id     BLOB NOT NULL,
            signature  BLOB NOT NULL
        );
        """;

    public const string CheckpointColumns = "replica_id, n, event_id, event_hash, time_us, previous, key_id, signature";

    public const string InsertCheckpoint =
        "INSERT INTO checkpoints (" + CheckpointColumns + ") VALUES ($replica, $n, $event, $eventHash, $time, $previous, $keyId, $signature)";

    /// <summary>Keeps, of the checkpoints at or before the chain's anchor (their events are deleted), only the newest.</summary>
    public const string PruneCheckpoints =
        "DELETE FROM checkpoints WHERE n < (SELECT max(n) FROM checkpoints WHERE event_id <= (SELECT id FROM chain WHERE key = 'anchor'))";

    public const string SelectCheckpointsShipped = "SELECT coalesce((SELECT value FROM meta WHERE key = 'checkpoints_shipped'), 0)";

    public const string UpdateCheckpointsShipped = "UPDATE meta SET value = $n WHERE key = 'checkpoints_shipped'";

    /// <summary>Version 1 to 2: the grant and hash columns, and an anchor after the existing (unhashed) events.</summary>
    public const string MigrateFrom1 = """
        ALTER TABLE events ADD COLUMN grant_info TEXT;
        ALTER TABLE events ADD COLUMN hash BLOB;
        """;

    public const string AnchorAfterExisting =
        "INSERT OR REPLACE INTO chain (key, id, hash) VALUES ('anchor', (" + "SELECT max(coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT value FROM meta WHERE key = 'last_id'), 0))" + "), zeroblob(32))";

    public const string SelectAnchor = "SELECT id, hash FROM chain WHERE key = 'anchor'";

    public const string SelectShipped = "SELECT coalesce((SELECT value FROM meta WHERE key = 'shipped'), 0)";

    public const string UpdateShipped = "UPDATE meta SET value = $shipped WHERE key = 'shipped'";

    public const string Columns =
        "id, time_us, client, client_address, kind, method, scheme, host, port, path, decision, rule, reason, " +
        "findings, secrets, status, request_bytes, response_bytes, duration_ms, grant_info";

    /// <summary>The columns and the chain hash (shipping and verification read both).</summary>
    public const string ColumnsWithHash = Columns + ", hash";

    public const string Insert =
        "INSERT INTO events (" + ColumnsWithHash + ") VALUES " +
        "($id, $time, $client, $clientAddress, $kind, $method, $scheme, $host, $port, $path, $decision, $rule, $reason, " +
        "$findings, $secrets, $status, $requestBytes, $responseBytes, $durationMs, $grant, $hash)";

    public const string UpdateLastId = "UPDATE meta SET value = $id WHERE key = 'last_id'";

    public const string SelectLastId =
        "SELECT max(coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT value FROM meta WHERE key = 'last_id'), 0))";
}
