namespace ProxyGuard.Audit.Tests;

public class QueueTests
{
    [Fact]
    public async Task A_full_queue_drops_and_counts_allow_events_but_keeps_room_for_denies()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), RetainFor = null, MaxEvents = null, QueueCapacity = 16 });
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        store.FaultInjector = () =>
        {
            entered.Set();
            release.Wait();
            return null;
        };

        Assert.True(store.TryWrite(Events.Make(1)));
        Assert.True(entered.Wait(TimeSpan.FromSeconds(10)));

        var accepted = 1;
        var refused = 0;
        for (var i = 2; i <= 40; i++)
        {
            if (store.TryWrite(Events.Make(i)))
            {
                accepted++;
            }
            else
            {
                refused++;
            }
        }

        Assert.Equal(1 + 14, accepted); // 16 minus the 2 slots reserved for denies
        Assert.Equal(refused, store.DroppedEvents);
        Assert.Equal(14, store.QueueDepth);

        await store.WriteAsync(Events.Make(100, AuditDecisions.Deny), CancellationToken.None);
        await store.WriteAsync(Events.Make(101, AuditDecisions.AuditDeny), CancellationToken.None);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => store.WriteAsync(Events.Make(102, AuditDecisions.Deny), cts.Token).AsTask());

        var late = store.WriteAsync(Events.Make(103, AuditDecisions.Deny), CancellationToken.None).AsTask();
        Assert.False(late.IsCompleted);
        store.FaultInjector = null;
        release.Set();
        await late.WaitAsync(TimeSpan.FromSeconds(10));
        await store.FlushAsync();

        var stored = Events.ReadAll(store);
        Assert.Equal(accepted + 3, stored.Count);
        Assert.Equal(3, stored.Count(e => e.Decision != AuditDecisions.Allow));
        Assert.Equal(0, store.QueueDepth);
    }

    [Fact]
    public async Task Write_and_wait_committed_returns_after_the_commit()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options(TimeSpan.FromSeconds(30)));
        Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(1, AuditDecisions.Deny), CancellationToken.None)
            .AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Single(store.Query(new EventQuery()).Events);
    }
}
