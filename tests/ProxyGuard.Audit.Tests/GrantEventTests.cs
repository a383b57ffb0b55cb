using Microsoft.Data.Sqlite;

namespace ProxyGuard.Audit.Tests;

/// <summary>Grant events keep their grant record; a version-1 database is migrated when it is opened.</summary>
public class GrantEventTests
{
    [Fact]
    public async Task A_version_1_database_gets_the_grant_column_and_keeps_its_events()
    {
        using var dir = new TempDirectory();
        await using (var store = EventStore.Open(dir.Path, Events.Options()))
        {
            Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(1), CancellationToken.None));
        }

        // Make it a version-1 database: no grant_info column.
        var path = Path.Combine(dir.Path, "events.db");
        await using (var db = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var command = db.CreateCommand();
            command.CommandText = "ALTER TABLE events DROP COLUMN grant_info; ALTER TABLE events DROP COLUMN hash; PRAGMA user_version = 1;";
            command.ExecuteNonQuery();
        }

        await using var reopened = EventStore.Open(dir.Path, Events.Options());
        var until = new DateTimeOffset(2026, 12, 3, 5, 0, 0, TimeSpan.Zero);
        var grant = Events.Make(2) with
        {
            Kind = AuditKinds.Grant,
            Rule = "grant:g1",
            Reason = "grant-created",
            Grant = new AuditGrant("g1", "created", "cli", "read the \u001b[31mchangelog", until),
        };
        Assert.True(await reopened.WriteAndWaitCommittedAsync(grant, CancellationToken.None));

        var events = reopened.Query(new EventQuery()).Events;
        Assert.Equal(2, events.Count);
        Assert.Null(events[0].Grant);
        var read = events[1].Grant!;
        Assert.Equal(("g1", "created", "cli", until), (read.Id, read.Action, read.By, read.Until));
        Assert.DoesNotContain('\u001b', read.Why);
        Assert.Contains("changelog", read.Why, StringComparison.Ordinal);
        Assert.DoesNotContain("\"grant\"", System.Text.Json.JsonSerializer.Serialize(events[0], AuditJson.Options), StringComparison.Ordinal);
    }
}
