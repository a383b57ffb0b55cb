namespace ProxyGuard.Audit.Tests;

public class FailureTests
{
    [Fact]
    public void Open_fails_with_a_clear_reason_when_the_directory_cannot_be_created()
    {
        using var dir = new TempDirectory();
        var file = Path.Combine(dir.Path, "not-a-dir");
        File.WriteAllText(file, "x");
        var ex = Assert.Throws<EventStoreException>(() => EventStore.Open(Path.Combine(file, "data")));
        Assert.Contains("cannot create data directory", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Open_fails_with_a_clear_reason_when_the_database_is_not_sqlite()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(Path.Combine(dir.Path, "events.db"), Enumerable.Repeat((byte)'x', 8192).ToArray());
        var ex = Assert.Throws<EventStoreException>(() => EventStore.Open(dir.Path));
        Assert.Contains("cannot open event database", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not a database", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_fails_when_the_database_path_is_a_directory()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(Path.Combine(dir.Path, "events.db"));
        var ex = Assert.Throws<EventStoreException>(() => EventStore.Open(dir.Path));
        Assert.Contains("cannot open event database", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_rejects_invalid_options()
    {
        using var dir = new TempDirectory();
        var ex = Assert.Throws<EventStoreException>(() => EventStore.Open(dir.Path, new EventStoreOptions { MaxBatch = 0 }));
        Assert.Contains("MaxBatch", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_disk_makes_the_store_unhealthy_fails_denies_closed_counts_allow_drops_and_recovers()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        store.TryWrite(Events.Make(0));
        await store.FlushAsync();

        store.MaxPageCount = 1;
        var accepted = 1;
        for (var i = 1; i <= 2000 && store.Healthy; i++)
        {
            if (store.TryWrite(Events.Make(i) with { Reason = new string('r', 500) }))
            {
                accepted++;
            }

            if (i % 100 == 0)
            {
                await Task.Delay(20);
            }
        }

        await Events.WaitUntilAsync(() => !store.Healthy);
        Assert.Contains("full", store.LastError, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', store.LastError!);

        var dropped = store.DroppedEvents;
        Assert.False(store.TryWrite(Events.Make(9999)));
        Assert.Equal(dropped + 1, store.DroppedEvents);
        var deny = await Assert.ThrowsAsync<EventStoreException>(
            () => store.WriteAsync(Events.Make(9999, AuditDecisions.Deny), CancellationToken.None).AsTask());
        Assert.Contains("failing", deny.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<EventStoreException>(
            () => store.WriteAndWaitCommittedAsync(Events.Make(9999, AuditDecisions.Deny), CancellationToken.None).AsTask());
        await Assert.ThrowsAsync<EventStoreException>(() => store.FlushAsync());

        // Space comes back: the held batch and everything still queued is committed, nothing accepted is lost.
        store.MaxPageCount = null;
        await Events.WaitUntilAsync(() => store.Healthy);
        await store.FlushAsync();
        Assert.Equal(accepted, Events.ReadAll(store).Count);
        Assert.Equal(accepted, store.WrittenEvents);
    }

    [Fact]
    public async Task A_commit_failure_holds_the_batch_and_waiters_get_it_after_recovery()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        var fail = true;
        store.FaultInjector = () => Volatile.Read(ref fail) ? new IOException("simulated disk I/O error") : null;

        var pending = store.WriteAndWaitCommittedAsync(Events.Make(1, AuditDecisions.Deny), CancellationToken.None).AsTask();
        await Events.WaitUntilAsync(() => !store.Healthy);
        Assert.Equal("cannot commit audit events: simulated disk I/O error", store.LastError);
        Assert.False(pending.IsCompleted);
        await Assert.ThrowsAsync<EventStoreException>(
            () => store.WriteAsync(Events.Make(2, AuditDecisions.Deny), CancellationToken.None).AsTask());

        Volatile.Write(ref fail, false);
        Assert.True(await pending.WaitAsync(TimeSpan.FromSeconds(15)));
        Assert.True(store.Healthy);
        Assert.Equal([1L], Events.ReadAll(store).Select(e => e.Id));
    }

    [Fact]
    public async Task Deny_writers_waiting_for_room_fail_closed_when_the_store_starts_failing()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), RetainFor = null, MaxEvents = null, QueueCapacity = 8 });
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        store.FaultInjector = () =>
        {
            entered.Set();
            release.Wait();
            return new IOException("device gone");
        };

        await store.WriteAsync(Events.Make(1, AuditDecisions.Deny), CancellationToken.None);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(10)));
        for (var i = 2; i <= 9; i++)
        {
            await store.WriteAsync(Events.Make(i, AuditDecisions.Deny), CancellationToken.None);
        }

        var waiting = store.WriteAsync(Events.Make(10, AuditDecisions.Deny), CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        release.Set();
        await Assert.ThrowsAsync<EventStoreException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        store.FaultInjector = null;
        await Events.WaitUntilAsync(() => store.Healthy);
        await store.FlushAsync();
        Assert.Equal(9, Events.ReadAll(store).Count);
    }

    [Fact]
    public async Task Disposing_a_failing_store_gives_up_and_counts_the_lost_events()
    {
        using var dir = new TempDirectory();
        var store = EventStore.Open(dir.Path, Events.Options());
        store.FaultInjector = () => new IOException("simulated disk I/O error");
        for (var i = 1; i <= 10; i++)
        {
            Assert.True(store.TryWrite(Events.Make(i)));
        }

        await Events.WaitUntilAsync(() => !store.Healthy);
        await store.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(10, store.DroppedEvents);
    }
}
