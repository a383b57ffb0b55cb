namespace ProxyGuard.Audit.Tests;

public class PagingConcurrencyTests
{
    [Fact]
    public async Task Paging_with_next_returns_every_id_exactly_once_in_order_under_concurrent_writes()
    {
        const int total = 20_000;
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(2), RetainFor = null, MaxEvents = null, MaxBatch = 64 });

        var writer = Task.Run(async () =>
        {
            for (var i = 1; i <= total; i++)
            {
                await store.WriteAsync(Events.Make(i), CancellationToken.None);
                if (i % 500 == 0)
                {
                    await Task.Delay(1);
                }
            }

            await store.FlushAsync();
        });

        var seen = new List<long>(total);
        var query = new EventQuery(Limit: 97);
        var pagesWhileWriting = 0;
        while (seen.Count < total)
        {
            var page = store.Query(query);
            if (!writer.IsCompleted)
            {
                pagesWhileWriting++;
            }

            foreach (var e in page.Events)
            {
                seen.Add(e.Id);
                Assert.Equal($"/e/{e.Id}", e.Path);
            }

            Assert.Equal(page.Events.Count == 0 ? query.After : page.Events[^1].Id, page.Next);
            query = query with { After = page.Next };
            if (page.Events.Count == 0)
            {
                Assert.False(writer.IsFaulted);
                await Task.Delay(1);
            }
        }

        await writer;
        Assert.Equal(Enumerable.Range(1, total).Select(i => (long)i), seen);
        Assert.Empty(store.Query(query).Events);
        Assert.True(pagesWhileWriting > 10, $"only {pagesWhileWriting} pages were read while writing");
    }

    [Fact]
    public async Task Filtered_paging_with_several_producers_sees_each_matching_event_once()
    {
        const int producers = 4;
        const int perProducer = 3000;
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(2), RetainFor = null, MaxEvents = null, MaxBatch = 50 });

        var writers = Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                var decision = i % 3 == 0 ? AuditDecisions.Deny : AuditDecisions.Allow;
                var e = Events.Make(i, decision, client: $"p{p}");
                if (decision == AuditDecisions.Deny)
                {
                    await store.WriteAsync(e, CancellationToken.None);
                }
                else
                {
                    while (!store.TryWrite(e))
                    {
                        await Task.Delay(1);
                    }
                }
            }
        })).ToArray();
        var all = Task.WhenAll(writers);

        var seen = new List<long>();
        var query = new EventQuery(Limit: 33, Decision: AuditDecisions.Deny);
        while (true)
        {
            var done = all.IsCompleted;
            if (done)
            {
                await store.FlushAsync();
            }

            var page = store.Query(query);
            seen.AddRange(page.Events.Select(e => e.Id));
            Assert.All(page.Events, e => Assert.Equal(AuditDecisions.Deny, e.Decision));
            query = query with { After = page.Next };
            if (done && page.Events.Count == 0)
            {
                break;
            }
        }

        await all;
        var expected = Events.ReadAll(store).Where(e => e.Decision == AuditDecisions.Deny).Select(e => e.Id).ToList();
        Assert.Equal(producers * perProducer / 3, expected.Count);
        Assert.Equal(expected, seen);
    }
}
