using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Storage;

/// <summary>
/// Deletes events past retention in small autocommitted chunks, so the writer can interleave batches:
/// by age (oldest ids first), by count (ids more than MaxEvents below the newest), by size (oldest first while
/// the used pages exceed MaxBytes); then returns free pages (incremental vacuum) and checkpoints the WAL.
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

    /// <summary>Runs one bounded step; returns the rows deleted. <see cref="Active"/> turns false when the run is done.</summary>
    public long Step(SqliteConnection connection, long lastId)
    {
        long deleted = 0;
        switch (_phase)
        {
            case Phase.Age:
                if (_options.RetainFor is TimeSpan age)
                {
                    var cutoff = PreparedEvent.ToMicros(_options.TimeProvider.GetUtcNow() - age);
                    deleted = Execute(
                        connection,
                        "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT $chunk) AND time_us < $cutoff",
                        "$cutoff",
                        cutoff);
                }

                Advance(deleted > 0, Phase.Count);
                break;

            case Phase.Count:
                if (_options.MaxEvents is long max && lastId - max > 0)
                {
                    deleted = Execute(
                        connection,
                        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= $bound ORDER BY id LIMIT $chunk)",
                        "$bound",
                        lastId - max);
                }

                Advance(deleted >= _options.CompactionChunk, Phase.Size);
                break;

            case Phase.Size:
                if (_options.MaxBytes is long maxBytes && UsedBytes(connection) > maxBytes)
                {
                    deleted = Execute(
                        connection,
                        "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT $chunk)");
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

    private long Execute(SqliteConnection connection, string sql, string? name = null, long value = 0)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$chunk", _options.CompactionChunk);
        if (name is not null)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return command.ExecuteNonQuery();
    }
}
