using Microsoft.Data.Sqlite;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit;

/// <summary>
/// Reads a data directory's recorded events without opening the store for writing: no writer, no retention
/// compaction, no schema changes, so an offline command (<c>policy suggest</c>, <c>policy replay</c>) can read the
/// store of a stopped proxy, a copy of it, or a running proxy's (WAL readers see committed events only).
/// </summary>
public sealed class EventArchive : IDisposable
{
    private readonly EventReader _reader;

    private EventArchive(string databasePath)
    {
        DatabasePath = databasePath;
        _reader = new EventReader(new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = true,
            Cache = SqliteCacheMode.Private,
            DefaultTimeout = 10,
        }.ToString());
    }

    public string DatabasePath { get; }

    /// <summary>True when <paramref name="dataDirectory"/> holds an event database.</summary>
    public static bool Exists(string dataDirectory) => File.Exists(Path.Combine(dataDirectory, EventSchema.FileName));

    /// <exception cref="EventStoreException">There is no event database in <paramref name="dataDirectory"/>.</exception>
    public static EventArchive Open(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        var path = Path.GetFullPath(Path.Combine(dataDirectory, EventSchema.FileName));
        if (!File.Exists(path))
        {
            throw new EventStoreException($"no event database in '{dataDirectory}' (expected {path}; use the proxy's --data-dir)");
        }

        return new EventArchive(path);
    }

    /// <summary>Every event with an id above <paramref name="after"/>, oldest first, read in pages; filters as in <see cref="EventQuery"/>.</summary>
    public IEnumerable<AuditEvent> ReadAll(long after = 0, string? client = null)
    {
        var cursor = after;
        while (true)
        {
            var page = _reader.Query(new EventQuery(cursor, EventQuery.MaxLimit, Client: client));
            foreach (var e in page.Events)
            {
                yield return e;
            }

            if (page.Events.Count < EventQuery.MaxLimit)
            {
                yield break;
            }

            cursor = page.Next;
        }
    }

    public void Dispose() => _reader.Dispose();
}
