using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Tests;

public class RetentionTests
{
    [Fact]
    public async Task Age_retention_deletes_old_events_by_the_clock_and_ids_are_never_reused()
    {
        using var dir = new TempDirectory();
        var clock = new FakeClock(Events.T0);
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions
        {
            BatchInterval = TimeSpan.FromMilliseconds(10),
            MaxEvents = null,
            TimeProvider = clock,
            RetainFor = TimeSpan.FromDays(1),
            CompactionChunk = 7,
            CompactionInterval = TimeSpan.FromHours(1),
        });
        for (var i = 1; i <= 100; i++)
        {
            store.TryWrite(Events.Make(i) with { Time = Events.T0.AddDays(-2).AddSeconds(i) });
        }

        for (var i = 101; i <= 150; i++)
        {
            store.TryWrite(Events.Make(i) with { Time = Events.T0.AddHours(-1).AddSeconds(i) });
        }

        await store.FlushAsync();
        await store.CompactAsync();
        Assert.Equal(Enumerable.Range(101, 50).Select(i => (long)i), Events.ReadAll(store).Select(e => e.Id));
        Assert.Equal(100, store.CompactedEvents);

        clock.Advance(TimeSpan.FromDays(1));
        await store.CompactAsync();
        Assert.Empty(Events.ReadAll(store));

        Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(1) with { Time = default }, CancellationToken.None));
        Assert.Equal(151, Assert.Single(Events.ReadAll(store)).Id);
    }

    [Fact]
    public async Task Ids_are_not_reused_after_an_emptied_store_is_reopened()
    {
        using var dir = new TempDirectory();
        var clock = new FakeClock(Events.T0);
        var options = new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), MaxEvents = null, TimeProvider = clock, RetainFor = TimeSpan.FromDays(1) };
        await using (var store = EventStore.Open(dir.Path, options))
        {
            store.TryWrite(Events.Make(1) with { Time = Events.T0.AddDays(-3) });
            await store.FlushAsync();
            await store.CompactAsync();
            Assert.Empty(Events.ReadAll(store));
        }

        await using (var store = EventStore.Open(dir.Path, options))
        {
            Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(2) with { Time = default }, CancellationToken.None));
            Assert.Equal(2, Assert.Single(Events.ReadAll(store)).Id);
        }
    }

    [Fact]
    public async Task Count_retention_keeps_the_newest_max_events()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), RetainFor = null, MaxEvents = 1000, CompactionChunk = 128 });
        for (var i = 1; i <= 2500; i++)
        {
            await store.WriteAsync(Events.Make(i), CancellationToken.None);
        }

        await store.FlushAsync();
        await store.CompactAsync();
        var ids = Events.ReadAll(store).Select(e => e.Id).ToList();
        Assert.Equal(Enumerable.Range(1501, 1000).Select(i => (long)i), ids);
    }

    [Fact]
    public async Task Size_retention_deletes_oldest_until_under_max_bytes_and_returns_pages()
    {
        using var dir = new TempDirectory();
        const long maxBytes = 512 * 1024;
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), RetainFor = null, MaxEvents = null, MaxBytes = maxBytes, CompactionChunk = 200 });
        for (var i = 1; i <= 4000; i++)
        {
            await store.WriteAsync(Events.Make(i) with { Reason = new string('r', 900) }, CancellationToken.None);
        }

        await store.FlushAsync();
        var before = PageStats(store.DatabasePath);
        Assert.True(before.Used > 3 * maxBytes);
        await store.CompactAsync();

        var ids = Events.ReadAll(store).Select(e => e.Id).ToList();
        Assert.NotEmpty(ids);
        Assert.Equal(4000, ids[^1]);
        Assert.Equal(Enumerable.Range((int)ids[0], ids.Count).Select(i => (long)i), ids);
        var after = PageStats(store.DatabasePath);
        Assert.True(after.Used <= maxBytes, $"used {after.Used}");
        Assert.True(after.Total < before.Total / 2, $"pages not returned: {before.Total} -> {after.Total}");
    }

    [Fact]
    public async Task Background_compaction_runs_on_the_interval()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions
        {
            BatchInterval = TimeSpan.FromMilliseconds(10),
            RetainFor = null,
            MaxEvents = 10,
            CompactionInterval = TimeSpan.FromMilliseconds(100),
        });
        for (var i = 1; i <= 100; i++)
        {
            store.TryWrite(Events.Make(i));
        }

        await store.FlushAsync();
        await Events.WaitUntilAsync(() => Events.ReadAll(store).Count == 10);
        Assert.Equal(91, Events.ReadAll(store)[0].Id);
    }

    private static (long Used, long Total) PageStats(string path)
    {
        using var connection = new SqliteConnection($"Data Source={path};Pooling=False;Mode=ReadOnly");
        connection.Open();
        long Scalar(string sql)
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            return (long)command.ExecuteScalar()!;
        }

        var pageSize = Scalar("PRAGMA page_size");
        var pages = Scalar("PRAGMA page_count");
        var free = Scalar("PRAGMA freelist_count");
        return ((pages - free) * pageSize, pages * pageSize);
    }
}
