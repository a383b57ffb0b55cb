namespace ProxyGuard.Audit.Storage;

/// <summary>SQL of the event database (schema version 2: version 1 plus <c>grant_info</c>).</summary>
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
            grant_info     TEXT
        );
        CREATE INDEX IF NOT EXISTS events_decision ON events (decision, id);
        CREATE INDEX IF NOT EXISTS events_client ON events (client, id);
        CREATE INDEX IF NOT EXISTS events_host ON events (host, id);
        CREATE TABLE IF NOT EXISTS meta (
            key   TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO meta (key, value) VALUES ('last_id', 0);
        """;

    public const string Columns =
        "id, time_us, client, client_address, kind, method, scheme, host, port, path, decision, rule, reason, " +
        "findings, secrets, status, request_bytes, response_bytes, duration_ms, grant_info";

    public const string Insert =
        "INSERT INTO events (" + Columns + ") VALUES " +
        "($id, $time, $client, $clientAddress, $kind, $method, $scheme, $host, $port, $path, $decision, $rule, $reason, " +
        "$findings, $secrets, $status, $requestBytes, $responseBytes, $durationMs, $grant)";

    /// <summary>Version 1 to 2: the column of grant events.</summary>
    public const string MigrateFrom1 = "ALTER TABLE events ADD COLUMN grant_info TEXT;";

    public const string UpdateLastId = "UPDATE meta SET value = $id WHERE key = 'last_id'";

    public const string SelectLastId =
        "SELECT max(coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT value FROM meta WHERE key = 'last_id'), 0))";
}
