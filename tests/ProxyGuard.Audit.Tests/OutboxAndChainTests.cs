using Microsoft.Data.Sqlite;
using ProxyGuard.Audit.Chain;

namespace ProxyGuard.Audit.Tests;

/// <summary>The local store as the central store's outbox, and its hash chain across retention.</summary>
public class OutboxAndChainTests
{
    [Fact]
    public async Task Retention_never_deletes_an_unshipped_event_and_leaves_a_chain_that_still_verifies()
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
            MaxUnshipped = 1000,
        });
        for (var i = 1; i <= 50; i++)
        {
            store.TryWrite(Events.Make(i) with { Time = Events.T0.AddDays(-2).AddSeconds(i) });
        }

        await store.FlushAsync();
        store.MarkShipped(30);
        await store.CompactAsync();

        // Old enough, but 31..50 are not shipped yet: they stay.
        Assert.Equal(Enumerable.Range(31, 20).Select(i => (long)i), Events.ReadAll(store).Select(e => e.Id));
        var report = ChainVerifier.VerifyLocal(dir.Path);
        Assert.True(report.Intact, report.Problem);
        Assert.Equal(20, report.Checked);

        store.MarkShipped(50);
        await store.CompactAsync();
        Assert.Empty(Events.ReadAll(store));

        // The next event chains to the anchor retention left.
        Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(51) with { Time = default }, CancellationToken.None));
        report = ChainVerifier.VerifyLocal(dir.Path);
        Assert.True(report.Intact, report.Problem);
        Assert.Equal(1, report.Checked);

        // Deleting the oldest remaining event (not retention: the anchor did not move) is a break.
        for (var i = 52; i <= 55; i++)
        {
            store.TryWrite(Events.Make(i));
        }

        await store.FlushAsync();
        Execute(dir.Path, "DELETE FROM events WHERE id = 51");
        report = ChainVerifier.VerifyLocal(dir.Path);
        Assert.Equal(51, report.BreakId);
        Assert.Contains("event 51 is missing", report.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_outbox_fails_the_store_closed_until_shipping_catches_up()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        await using var outbox = EventStore.Open(Path.Combine(dir.Path, "outbox"), new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), MaxUnshipped = 10 });
        for (var i = 1; i <= 11; i++)
        {
            Assert.True(outbox.TryWrite(Events.Make(i)));
        }

        await Events.WaitUntilAsync(() => outbox.OutboxFull);
        Assert.False(outbox.Healthy);
        Assert.Null(outbox.TryReserve());
        await Assert.ThrowsAsync<EventStoreException>(async () => await outbox.WriteAsync(Events.Make(12, AuditDecisions.Deny), CancellationToken.None));
        Assert.Contains("outbox", outbox.LastError, StringComparison.Ordinal);

        outbox.MarkShipped(5);
        Assert.True(outbox.Healthy);
        Assert.Equal(6, outbox.UnshippedEvents);
        Assert.True(await outbox.WriteAndWaitCommittedAsync(Events.Make(13, AuditDecisions.Deny), CancellationToken.None));

        // Without a central store there is no bound.
        for (var i = 1; i <= 20; i++)
        {
            Assert.True(store.TryWrite(Events.Make(i)));
        }

        await store.FlushAsync();
        Assert.True(store.Healthy);
        Assert.Equal(0, store.UnshippedEvents);
    }

    [Fact]
    public async Task A_grant_event_is_read_back_whole_and_an_edited_grant_breaks_the_chain()
    {
        using var dir = new TempDirectory();
        await using (var store = EventStore.Open(dir.Path, Events.Options()))
        {
            var until = new DateTimeOffset(2026, 12, 3, 6, 0, 0, TimeSpan.Zero);
            var grant = new AuditGrant("g1", "create", "cli", "read the changelog", until);
            Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(1) with { Kind = "grant", Grant = grant }, CancellationToken.None));
            Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(2), CancellationToken.None));
            var stored = Events.ReadAll(store);
            Assert.Equal(grant, stored[0].Grant);
            Assert.Null(stored[1].Grant);
        }

        Assert.True(ChainVerifier.VerifyLocal(dir.Path).Intact);

        // The grant's what, why and until are covered by the chain like every other column.
        Execute(dir.Path, "UPDATE events SET grant_info = replace(grant_info, 'read the changelog', 'anything') WHERE id = 1");
        var report = ChainVerifier.VerifyLocal(dir.Path);
        Assert.False(report.Intact);
        Assert.Equal(1, report.BreakId);
    }

    private static void Execute(string directory, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(directory, "events.db")};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
