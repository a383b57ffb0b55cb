namespace ProxyGuard.Audit.Central;

/// <summary>
/// SQL of the central event store (PostgreSQL). Replicas insert into <c>proxyguard_ingest</c>; the sequencer (whoever
/// holds the advisory lock for one short transaction) moves ingested rows into <c>proxyguard_events</c>, numbering
/// them with the next gapless cursor values. Readers page <c>proxyguard_events</c> by <c>seq</c>.
/// </summary>
internal static class CentralSchema
{
    /// <summary>Advisory lock keys (any constant: they only need to be the same on every replica).</summary>
    public const string SchemaLock = "7021862143161001";

    public const string SequencerLock = "7021862143161002";

    public const string EventColumns =
        "time_us, client, client_address, kind, method, scheme, host, port, path, decision, rule, reason, " +
        "findings, secrets, status, request_bytes, response_bytes, duration_ms, grant_info, hash";

    private const string EventColumnTypes = """
            time_us        bigint NOT NULL,
            client         text,
            client_address text,
            kind           text NOT NULL,
            method         text,
            scheme         text,
            host           text NOT NULL,
            port           integer NOT NULL,
            path           text,
            decision       text NOT NULL,
            rule           text,
            reason         text,
            findings       text,
            secrets        text,
            status         integer,
            request_bytes  bigint NOT NULL,
            response_bytes bigint NOT NULL,
            duration_ms    double precision NOT NULL,
            grant_info     text,
            hash           bytea
        """;

    public const string Create = $"""
        SELECT pg_advisory_xact_lock({SchemaLock});
        CREATE TABLE IF NOT EXISTS proxyguard_replicas (
            replica_id      text PRIMARY KEY,
            shipped_through bigint NOT NULL,
            anchor_id       bigint NOT NULL,
            anchor_hash     bytea NOT NULL,
            last_seen       timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE proxyguard_replicas ADD COLUMN IF NOT EXISTS incarnation text;
        CREATE TABLE IF NOT EXISTS proxyguard_ingest (
            arrival    bigserial,
            replica_id text NOT NULL,
            local_id   bigint NOT NULL,
        {EventColumnTypes},
            PRIMARY KEY (replica_id, local_id)
        );
        CREATE TABLE IF NOT EXISTS proxyguard_events (
            seq        bigint PRIMARY KEY,
            replica_id text NOT NULL,
            local_id   bigint NOT NULL,
        {EventColumnTypes},
            UNIQUE (replica_id, local_id)
        );
        CREATE INDEX IF NOT EXISTS proxyguard_events_decision ON proxyguard_events (decision, seq);
        CREATE INDEX IF NOT EXISTS proxyguard_events_client ON proxyguard_events (client, seq);
        CREATE INDEX IF NOT EXISTS proxyguard_events_host ON proxyguard_events (host, seq);
        CREATE TABLE IF NOT EXISTS proxyguard_sequence (
            id       integer PRIMARY KEY CHECK (id = 1),
            last_seq bigint NOT NULL
        );
        INSERT INTO proxyguard_sequence (id, last_seq) VALUES (1, 0) ON CONFLICT DO NOTHING;
        CREATE TABLE IF NOT EXISTS proxyguard_checkpoints (
            replica_id        text NOT NULL,
            n                 bigint NOT NULL,
            signed_replica_id text NOT NULL,
            local_id          bigint NOT NULL,
            event_hash        bytea NOT NULL,
            time_us           bigint NOT NULL,
            previous          bytea NOT NULL,
            key_id            bytea NOT NULL,
            signature         bytea NOT NULL,
            PRIMARY KEY (replica_id, n)
        );
        """;

    public const string CheckpointColumns = "signed_replica_id, n, local_id, event_hash, time_us, previous, key_id, signature";

    public const string SelectCheckpointCursor = "SELECT coalesce(max(n), 0) FROM proxyguard_checkpoints WHERE replica_id = $1";

    /// <summary>
    /// After central retention: of each replica's checkpoints at or before its anchor (their events are deleted), only
    /// the newest is kept.
    /// </summary>
    public const string PruneCheckpoints = """
        DELETE FROM proxyguard_checkpoints c USING proxyguard_replicas r
        WHERE c.replica_id = r.replica_id AND c.local_id <= r.anchor_id
          AND c.n < (SELECT max(k.n) FROM proxyguard_checkpoints k WHERE k.replica_id = r.replica_id AND k.local_id <= r.anchor_id)
        """;

    /// <summary>One checkpoint; shipped again after a lost reply, it is stored once.</summary>
    public const string ShipCheckpoint =
        "INSERT INTO proxyguard_checkpoints (replica_id, " + CheckpointColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) " +
        "ON CONFLICT (replica_id, n) DO NOTHING";

    /// <summary>
    /// Registers a replica on its first shipment: its chain starts after its local anchor, under its data directory's
    /// incarnation ($4). A row registered before incarnations existed is claimed by the first incarnation whose local
    /// store reaches the shipped cursor ($5 is the local store's newest id).
    /// </summary>
    public const string Register = """
        INSERT INTO proxyguard_replicas (replica_id, shipped_through, anchor_id, anchor_hash, incarnation)
        VALUES ($1, $2, $2, $3, $4)
        ON CONFLICT (replica_id) DO UPDATE SET incarnation = excluded.incarnation
        WHERE proxyguard_replicas.incarnation IS NULL AND excluded.incarnation IS NOT NULL AND proxyguard_replicas.shipped_through <= $5;
        """;

    public const string SelectShipped = "SELECT shipped_through, incarnation, last_seen FROM proxyguard_replicas WHERE replica_id = $1";

    /// <summary>One shipped batch, as arrays; duplicates (a batch shipped again after a lost reply) are ignored.</summary>
    public const string Ship = """
        INSERT INTO proxyguard_ingest (replica_id, local_id, time_us, client, client_address, kind, method, scheme, host, port, path,
            decision, rule, reason, findings, secrets, status, request_bytes, response_bytes, duration_ms, grant_info, hash)
        SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
            $10::integer[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::integer[], $18::bigint[],
            $19::bigint[], $20::double precision[], $21::text[], $22::bytea[]) AS t(local_id)
        ORDER BY t.local_id
        ON CONFLICT (replica_id, local_id) DO NOTHING
        """;

    public const string MarkShipped =
        "UPDATE proxyguard_replicas SET shipped_through = greatest(shipped_through, $2), last_seen = now() WHERE replica_id = $1";

    /// <summary>
    /// Run by the holder of the sequencer lock: moves up to $1 ingested rows, in arrival order, into the events table
    /// with the next cursor values (rows already there, shipped twice, are dropped without taking a number).
    /// Returns how many rows got a cursor value.
    /// </summary>
    public const string Sequence = $"""
        WITH picked AS (
            SELECT replica_id, local_id FROM proxyguard_ingest ORDER BY arrival LIMIT $1
        ), moved AS (
            DELETE FROM proxyguard_ingest i USING picked p
            WHERE i.replica_id = p.replica_id AND i.local_id = p.local_id
            RETURNING i.*
        ), fresh AS (
            SELECT m.* FROM moved m
            WHERE NOT EXISTS (SELECT 1 FROM proxyguard_events e WHERE e.replica_id = m.replica_id AND e.local_id = m.local_id)
        ), numbered AS (
            SELECT (SELECT last_seq FROM proxyguard_sequence WHERE id = 1) + row_number() OVER (ORDER BY arrival) AS seq, fresh.*
            FROM fresh
        ), inserted AS (
            INSERT INTO proxyguard_events (seq, replica_id, local_id, {EventColumns})
            SELECT seq, replica_id, local_id, {EventColumns} FROM numbered
            RETURNING seq
        )
        UPDATE proxyguard_sequence SET last_seq = coalesce((SELECT max(seq) FROM inserted), last_seq) WHERE id = 1
        RETURNING (SELECT count(*) FROM inserted), (SELECT count(*) FROM moved)
        """;

    /// <summary>
    /// Central retention, run by the holder of the sequencer lock: deletes a prefix of the cursor (up to the first
    /// event younger than $1, at most $2 rows) and moves each affected replica's anchor to its last deleted event.
    /// </summary>
    public const string Retain = """
        WITH chunk AS (
            SELECT seq, time_us FROM proxyguard_events ORDER BY seq LIMIT $2
        ), upto AS (
            SELECT coalesce((SELECT min(seq) FROM chunk WHERE time_us >= $1) - 1, (SELECT max(seq) FROM chunk)) AS seq
        ), gone AS (
            DELETE FROM proxyguard_events WHERE seq <= (SELECT seq FROM upto) RETURNING replica_id, local_id, hash
        ), last AS (
            SELECT DISTINCT ON (replica_id) replica_id, local_id, hash FROM gone ORDER BY replica_id, local_id DESC
        ), anchored AS (
            UPDATE proxyguard_replicas r SET anchor_id = l.local_id, anchor_hash = coalesce(l.hash, r.anchor_hash)
            FROM last l WHERE r.replica_id = l.replica_id AND l.local_id > r.anchor_id
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM anchored)
        """;

    public const string SelectColumns = "seq, replica_id, local_id, " + EventColumns;
}
