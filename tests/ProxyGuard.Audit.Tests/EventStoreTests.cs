using System.Text;
using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Tests;

public class EventStoreTests
{
    [Fact]
    public async Task Round_trips_every_field()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        var written = Events.Make(1, AuditDecisions.AuditDeny) with
        {
            Id = 999,
            Time = new DateTimeOffset(2025, 6, 1, 14, 0, 0, TimeSpan.FromHours(2)).AddTicks(1234560),
            Kind = AuditKinds.Connect,
            Findings = [new AuditFinding("aws-access-key", "body", "block"), new AuditFinding("pii-email", "header:x-data", "audit")],
            SecretsInjected = ["OPENAI_KEY", "GITHUB_TOKEN"],
            Status = null,
            DurationMs = 12.25,
        };
        Assert.True(await store.WriteAndWaitCommittedAsync(written, CancellationToken.None));

        var read = Assert.Single(store.Query(new EventQuery()).Events);
        Assert.Equal(1, read.Id);
        Assert.Equal(written.Time.UtcDateTime, read.Time.UtcDateTime);
        Assert.Equal(TimeSpan.Zero, read.Time.Offset);
        Assert.Equal(written with { Id = 1, Time = read.Time, Findings = read.Findings, SecretsInjected = read.SecretsInjected }, read);
        Assert.Equal(written.Findings, read.Findings);
        Assert.Equal(written.SecretsInjected, read.SecretsInjected);
        Assert.Equal(1, store.WrittenEvents);
        Assert.True(store.Healthy);
    }

    [Fact]
    public async Task Creates_the_directory_and_a_wal_database_with_filter_indexes()
    {
        using var dir = new TempDirectory();
        var dataDir = Path.Combine(dir.Path, "nested", "data");
        await using (var store = EventStore.Open(dataDir, Events.Options()))
        {
            Assert.True(store.TryWrite(Events.Make(1)));
            await store.FlushAsync();
        }

        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir, "events.db")};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", command.ExecuteScalar());
        command.CommandText = "SELECT group_concat(name) FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'events_%' ORDER BY name)";
        Assert.Equal("events_client,events_decision,events_host", command.ExecuteScalar());
    }

    [Fact]
    public async Task Missing_time_is_stamped_by_the_store_clock()
    {
        using var dir = new TempDirectory();
        var clock = new FakeClock(Events.T0);
        await using var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromMilliseconds(10), RetainFor = null, MaxEvents = null, TimeProvider = clock });
        store.TryWrite(Events.Make(1) with { Time = default });
        await store.FlushAsync();
        Assert.Equal(Events.T0, Assert.Single(store.Query(new EventQuery()).Events).Time);
    }

    [Fact]
    public async Task Store_removes_query_values_and_never_persists_them()
    {
        using var dir = new TempDirectory();
        await using (var store = EventStore.Open(dir.Path, Events.Options()))
        {
            store.TryWrite(Events.Make(1) with { Path = "/v1/x?api_key=sk-VERYSECRET123&b=2#frag" });
            await store.FlushAsync();
            Assert.Equal("/v1/x?api_key=&b=", Assert.Single(store.Query(new EventQuery()).Events).Path);
        }

        foreach (var file in Directory.GetFiles(dir.Path))
        {
            var text = Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file));
            Assert.DoesNotContain("VERYSECRET", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Filters_match_exactly_and_hosts_are_normalised()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        store.TryWrite(Events.Make(1, AuditDecisions.Allow, "a", "API.Example.COM."));
        store.TryWrite(Events.Make(2, AuditDecisions.Deny, "a", "other.example.com"));
        store.TryWrite(Events.Make(3, AuditDecisions.AuditDeny, "b", "api.example.com"));
        store.TryWrite(Events.Make(4, AuditDecisions.Deny, "b", "api.example.com"));
        store.TryWrite(Events.Make(5, AuditDecisions.Deny, "ab", "sub.api.example.com"));
        await store.FlushAsync();

        static long[] Ids(EventPage page) => page.Events.Select(e => e.Id).ToArray();
        Assert.Equal([2, 4, 5], Ids(store.Query(new EventQuery(Decision: "deny"))));
        Assert.Equal([3], Ids(store.Query(new EventQuery(Decision: "audit-deny"))));
        Assert.Equal([1, 2], Ids(store.Query(new EventQuery(Client: "a"))));
        Assert.Equal([1, 3, 4], Ids(store.Query(new EventQuery(Host: "Api.Example.com."))));
        Assert.Equal([4], Ids(store.Query(new EventQuery(Decision: "deny", Client: "b", Host: "api.example.com"))));
        Assert.Equal([4, 5], Ids(store.Query(new EventQuery(After: 3, Decision: "deny"))));
        Assert.Empty(Ids(store.Query(new EventQuery(Host: "example.com"))));
        Assert.Equal("api.example.com", store.Query(new EventQuery(Limit: 1)).Events[0].Host);
        Assert.Equal([1, 2, 3, 4, 5], Ids(store.Query(new EventQuery(Decision: "", Client: "", Host: ""))));
    }

    [Fact]
    public async Task Limit_is_clamped_and_next_is_the_cursor()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        for (var i = 1; i <= 1200; i++)
        {
            await store.WriteAsync(Events.Make(i), CancellationToken.None);
        }

        await store.FlushAsync();
        Assert.Single(store.Query(new EventQuery(Limit: 0)).Events);
        Assert.Single(store.Query(new EventQuery(Limit: -5)).Events);
        var big = store.Query(new EventQuery(Limit: 5000));
        Assert.Equal(1000, big.Events.Count);
        Assert.Equal(1000, big.Next);
        var rest = store.Query(new EventQuery(After: big.Next, Limit: 5000));
        Assert.Equal(200, rest.Events.Count);
        Assert.Equal(1200, rest.Next);
        var empty = store.Query(new EventQuery(After: 1200));
        Assert.Empty(empty.Events);
        Assert.Equal(1200, empty.Next);
        Assert.Equal(0, store.Query(new EventQuery(After: -7, Decision: "nope")).Next);
    }

    [Fact]
    public async Task Ids_continue_after_reopening()
    {
        using var dir = new TempDirectory();
        await using (var store = EventStore.Open(dir.Path, Events.Options()))
        {
            store.TryWrite(Events.Make(1));
            store.TryWrite(Events.Make(2));
        }

        await using (var store = EventStore.Open(dir.Path, Events.Options()))
        {
            Assert.Equal(2, Events.ReadAll(store).Count);
            Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(3), CancellationToken.None));
            Assert.Equal([1L, 2L, 3L], Events.ReadAll(store).Select(e => e.Id));
        }
    }

    [Fact]
    public async Task Dispose_flushes_the_queue()
    {
        using var dir = new TempDirectory();
        var store = EventStore.Open(dir.Path, new EventStoreOptions { BatchInterval = TimeSpan.FromSeconds(30), RetainFor = null, MaxEvents = null, MaxBatch = 100_000 });
        for (var i = 1; i <= 5000; i++)
        {
            Assert.True(store.TryWrite(Events.Make(i)));
        }

        await store.DisposeAsync();
        Assert.False(store.Healthy);
        Assert.False(store.TryWrite(Events.Make(0)));
        await Assert.ThrowsAsync<EventStoreException>(() => store.WriteAsync(Events.Make(0), CancellationToken.None).AsTask());

        await using var reopened = EventStore.Open(dir.Path, Events.Options());
        Assert.Equal(5000, Events.ReadAll(reopened).Count);
    }

    [Fact]
    public async Task Batches_commit_within_the_batch_interval_without_a_flush()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options(TimeSpan.FromMilliseconds(50)));
        store.TryWrite(Events.Make(1));
        await Events.WaitUntilAsync(() => store.Query(new EventQuery()).Events.Count == 1, TimeSpan.FromSeconds(5));
        Assert.Equal(1, store.WrittenEvents);
        Assert.Equal(0, store.QueueDepth);
    }

    [Fact]
    public async Task Long_and_untrusted_fields_are_bounded()
    {
        using var dir = new TempDirectory();
        await using var store = EventStore.Open(dir.Path, Events.Options());
        store.TryWrite(Events.Make(1) with
        {
            Reason = new string('r', 100_000),
            Path = "/" + new string('p', 100_000),
            SecretsInjected = Enumerable.Range(0, 10_000).Select(i => $"S{i}").ToArray(),
            DurationMs = double.NaN,
        });
        await store.FlushAsync();
        var e = Assert.Single(store.Query(new EventQuery()).Events);
        Assert.True(e.Reason!.Length <= 1024);
        Assert.True(e.Path!.Length <= PathRedaction.MaxLength);
        Assert.True(e.SecretsInjected.Count <= 256);
        Assert.Equal(0, e.DurationMs);
    }
}
