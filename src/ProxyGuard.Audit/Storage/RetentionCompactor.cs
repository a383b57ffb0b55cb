using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Storage;

/// <summary>
/// Deletes events past retention in small chunks, each its own transaction, so the writer can interleave batches:
/// by age (the oldest events up to the first one younger than the cut-off), by count (ids more than MaxEvents below
/// the newest), by size (oldest first while the used pages exceed MaxBytes); then returns free pages (incremental
/// vacuum) and checkpoints the WAL. Every deletion removes a prefix of the ids, never past the shipped cursor of the
/// central store's outbox, and records the last deleted event's id and hash as the chain's anchor in the same
/// transaction, so a verifier can tell retention from a deleted row.
/// </summary>
internal sealed class RetentionCompactor
{
    private const int VacuumPagesPerStep = 2048;

    private readonly EventStoreOptions _options;
    private Phase _phase = Phase.Idle;
    private long _deletedThisRun;
    private bool _rerun;

    public RetentionCompactor(EventStoreOptions options)
    {
        _options = options;
    }

    private enum Phase
    {
        Idle,
        Age,
        Count,
        Size,
        Vacuum,
        Checkpoint,
    }

    public bool Active => _phase != Phase.Idle;

    public static bool HasRetention(EventStoreOptions options) =>
        options.RetainFor is not null || options.MaxEvents is not null || options.MaxBytes is not null;

    /// <summary>Starts a run; a request during a run schedules one more run right after it.</summary>
    public void Start()
    {
        if (_phase == Phase.Idle)
        {
            _phase = Phase.Age;
            _deletedThisRun = 0;
        }
        else
        {
            _rerun = true;
        }
    }

    public void Abort()
    {
        _phase = Phase.Idle;
        _rerun = false;
    }

    /// <summary>
    /// Runs one bounded step; returns the rows deleted. <see cref="Active"/> turns false when the run is done.
    /// Nothing above <paramref name="shipped"/> (the outbox cursor; <see cref="long.MaxValue"/> without one) is deleted.
    /// </summary>
    public long Step(SqliteConnection connection, long lastId, long shipped)
    {
        long deleted = 0;
        var bound = Math.Min(lastId, shipped);
        switch (_phase)
        {
            case Phase.Age:
                if (_options.RetainFor is TimeSpan age)
                {
                    var cutoff = PreparedEvent.ToMicros(_options.TimeProvider.GetUtcNow() - age);
                    deleted = DeletePrefix(
                        connection,
                        "SELECT coalesce((SELECT min(id) FROM chunk WHERE time_us >= $cutoff) - 1, (SELECT max(id) FROM chunk))",
                        bound,
                        cutoff);
                }

                Advance(deleted > 0, Phase.Count);
                break;

            case Phase.Count:
                if (_options.MaxEvents is long max && lastId - max > 0)
                {
                    deleted = DeletePrefix(connection, "SELECT max(id) FROM chunk", Math.Min(bound, lastId - max));
                }

                Advance(deleted >= _options.CompactionChunk, Phase.Size);
                break;

            case Phase.Size:
                if (_options.MaxBytes is long maxBytes && UsedBytes(connection) > maxBytes)
                {
                    deleted = DeletePrefix(connection, "SELECT max(id) FROM chunk", bound);
                }

                Advance(deleted > 0, Phase.Vacuum);
                break;

            case Phase.Vacuum:
                var more = _deletedThisRun > 0
                    && Scalar(connection, "PRAGMA auto_vacuum") == 2
                    && Scalar(connection, "PRAGMA freelist_count") > 0;
                if (more)
                {
                    using var vacuum = connection.CreateCommand();
                    vacuum.CommandText = $"PRAGMA incremental_vacuum({VacuumPagesPerStep})";
                    vacuum.ExecuteNonQuery();
                }

                Advance(more, Phase.Checkpoint);
                break;

            case Phase.Checkpoint:
                if (_deletedThisRun > 0)
                {
                    using var checkpoint = connection.CreateCommand();
                    checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
                    checkpoint.ExecuteNonQuery();
                }

                _phase = _rerun ? Phase.Age : Phase.Idle;
                _rerun = false;
                _deletedThisRun = 0;
                break;

            default:
                break;
        }

        if (_phase != Phase.Idle)
        {
            _deletedThisRun += deleted;
        }

        return deleted;
    }

    private static long UsedBytes(SqliteConnection connection) =>
        (Scalar(connection, "PRAGMA page_count") - Scalar(connection, "PRAGMA freelist_count")) * Scalar(connection, "PRAGMA page_size");

    private static long Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar() ?? 0L, System.Globalization.CultureInfo.InvariantCulture);
    }

    private void Advance(bool stay, Phase next)
    {
        if (!stay)
        {
            _phase = next;
        }
    }

    /// <summary>
    /// Deletes the events with ids up to the one <paramref name="uptoSql"/> selects from <c>chunk</c> (the oldest
    /// CompactionChunk events at or below <paramref name="bound"/>), and moves the chain anchor to the last of them,
    /// in one transaction.
    /// </summary>
    private long DeletePrefix(SqliteConnection connection, string uptoSql, long bound, long cutoff = 0)
    {
        using var transaction = connection.BeginTransaction();
        long upto;
        using (var select = connection.CreateCommand())
        {
            select.Transaction = transaction;
            select.CommandText = "WITH chunk AS (SELECT id, time_us FROM events WHERE id <= $bound ORDER BY id LIMIT $chunk) " + uptoSql;
            select.Parameters.AddWithValue("$bound", bound);
            select.Parameters.AddWithValue("$chunk", _options.CompactionChunk);
            select.Parameters.AddWithValue("$cutoff", cutoff);
            upto = select.ExecuteScalar() is long value ? value : 0;
        }

        if (upto <= 0)
        {
            return 0;
        }

        using (var anchor = connection.CreateCommand())
        {
            anchor.Transaction = transaction;
            anchor.CommandText =
                "UPDATE chain SET id = e.id, hash = e.hash FROM (SELECT id, hash FROM events WHERE id <= $upto ORDER BY id DESC LIMIT 1) AS e " +
                "WHERE chain.key = 'anchor' AND e.id > chain.id AND e.hash IS NOT NULL";
            anchor.Parameters.AddWithValue("$upto", upto);
            anchor.ExecuteNonQuery();
        }

        long deleted;
        using (var delete = connection.CreateCommand())
        {
            delete.Transaction = transaction;
            delete.CommandText = "DELETE FROM events WHERE id <= $upto";
            delete.Parameters.AddWithValue("$upto", upto);
            deleted = delete.ExecuteNonQuery();
        }

        transaction.Commit();
        return deleted;
    }
}
