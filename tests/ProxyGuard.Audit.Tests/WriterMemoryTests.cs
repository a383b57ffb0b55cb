using Microsoft.Data.Sqlite;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit.Tests;

/// <summary>
/// The writer's SQLite page cache must not grow with the database (the soak's RSS creep, docs/reliability.md
/// section 4): it is measured on the writer's own connection (SQLITE_DBSTATUS_CACHE_USED) after writing a
/// database several times larger than the bound.
/// </summary>
public class WriterMemoryTests
{
    [Fact]
    public async Task Writer_page_cache_stays_bounded_while_the_database_grows()
    {
        using var dir = new TempDirectory();
        var store = EventStore.Open(dir.Path, Events.Options());
        long databaseBytes;
        long cacheBytes;
        try
        {
            var padding = new string('p', 400);
            var hosts = Enumerable.Range(0, 50).Select(i => $"host-{i}.example.com").ToArray();
            for (var seq = 1; seq <= 40_000; seq++)
            {
                var e = Events.Make(seq, client: "agent-" + (seq % 7), host: hosts[seq % hosts.Length]) with { Path = $"/e/{seq}/{padding}" };
                await store.WriteAsync(e, CancellationToken.None);
            }

            await store.FlushAsync();
            cacheBytes = store.WriterCacheBytes;
            databaseBytes = DatabaseBytes(store.DatabasePath);
        }
        finally
        {
            await store.DisposeAsync();
        }

        const long bound = EventWriter.CacheKiB * 1024L;
        Assert.True(databaseBytes > 4 * bound, $"the database ({databaseBytes} bytes) must be well over the cache bound for the test to mean anything");
        Assert.True(cacheBytes > 0, "the writer reported no cache use");
        // CACHE_USED counts page headers too; allow a quarter on top of cache_size.
        Assert.True(cacheBytes <= bound + (bound / 4), $"writer page cache {cacheBytes} bytes for a {databaseBytes}-byte database (bound {bound})");
    }

    private static long DatabaseBytes(string databasePath)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size())";
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
