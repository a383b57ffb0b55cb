using System.Buffers;
using Microsoft.Data.Sqlite;
using ProxyGuard.Audit.Chain;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit.Tests;

/// <summary>
/// Signed checkpoints of the local chain (issue 17): an insider with write access to the data directory but not to the
/// signing key tries to hide events so that <c>events verify --public-key</c> still says OK.
/// </summary>
public class CheckpointTests
{
    private const string ReplicaId = "cp-test";

    [Fact]
    public async Task Checkpoints_are_signed_every_N_events_and_at_close_and_verify_with_the_public_key_alone()
    {
        using var dir = new TempDirectory();
        var pem = await WriteAsync(dir.Path, 12, 3);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir.Path, CheckpointSigner.DefaultFileName)));
        }

        var report = ChainVerifier.VerifyLocal(dir.Path, CheckpointKeys.Parse(pem, "test"));
        Assert.True(report.Intact, report.Problem);
        Assert.Equal(15, report.Checked);
        Assert.Equal(2, report.Checkpoints); // one when 12 events reached the count of 5, one at close for 13..15
        Assert.Equal(15, report.NewestCheckpoint!.EventId);
        Assert.Equal(ReplicaId, report.NewestCheckpoint.ReplicaId);
        Assert.DoesNotContain("PRIVATE", pem, StringComparison.Ordinal);

        // Without keys nothing is claimed about checkpoints.
        Assert.False(ChainVerifier.VerifyLocal(dir.Path).CheckpointsChecked);

        // A key others may read is refused (fail closed).
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Path.Combine(dir.Path, CheckpointSigner.DefaultFileName), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            var ex = Assert.Throws<EventStoreException>(() => EventStore.Open(dir.Path, Options()));
            Assert.Contains("0600", ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_truncated_tail_with_a_lowered_last_id_is_reported_by_the_checkpoints()
    {
        using var dir = new TempDirectory();
        var keys = CheckpointKeys.Parse(await WriteAsync(dir.Path, 12, 3), "test");
        Execute(dir.Path, "DELETE FROM events WHERE id > 10; UPDATE meta SET value = 10 WHERE key = 'last_id'");

        Assert.True(ChainVerifier.VerifyLocal(dir.Path).Intact); // the chain alone cannot tell
        var report = ChainVerifier.VerifyLocal(dir.Path, keys);
        Assert.Equal(11, report.BreakId);
        Assert.Contains("signed checkpoint 2", report.Problem, StringComparison.Ordinal);

        // Deleting the newest checkpoint too leaves the older one, which still covers a deleted event.
        Execute(dir.Path, "DELETE FROM checkpoints WHERE n = 2");
        report = ChainVerifier.VerifyLocal(dir.Path, keys);
        Assert.Equal(11, report.BreakId);
        Assert.Contains("signed checkpoint 1", report.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edit_with_the_chain_recomputed_after_it_is_reported_by_the_checkpoints()
    {
        using var dir = new TempDirectory();
        var keys = CheckpointKeys.Parse(await WriteAsync(dir.Path, 12, 3), "test");
        Execute(dir.Path, "UPDATE events SET decision = 'allow', path = '/innocent' WHERE id = 4");
        Assert.Equal(4, ChainVerifier.VerifyLocal(dir.Path).BreakId); // control: the edit alone breaks the chain
        RecomputeHashes(dir.Path);

        Assert.True(ChainVerifier.VerifyLocal(dir.Path).Intact); // the insider rebuilt a consistent chain
        var report = ChainVerifier.VerifyLocal(dir.Path, keys);
        Assert.Equal(12, report.BreakId); // the first event a checkpoint vouches for
        Assert.Contains("rewritten", report.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forged_changed_deleted_and_replayed_checkpoints_are_reported()
    {
        using var dir = new TempDirectory();
        var options = Options(every: 2);
        var keys = CheckpointKeys.Parse(await WriteAsync(dir.Path, 0, 0, options), "test");
        await using (var store = EventStore.Open(dir.Path, options))
        {
            for (var i = 1; i <= 8; i++)
            {
                Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(i), CancellationToken.None)); // checkpoints at 2, 4, 6, 8
            }
        }

        var intact = ChainVerifier.VerifyLocal(dir.Path, keys);
        Assert.True(intact.Intact, intact.Problem);
        Assert.Equal(4, intact.Checkpoints);
        var backup = Path.Combine(dir.Path, "backup.db");
        File.Copy(Path.Combine(dir.Path, "events.db"), backup);

        // Another key (the insider's own) is not trusted.
        using (var other = new TempDirectory())
        {
            var foreign = CheckpointKeys.Parse(await WriteAsync(other.Path, 1, 0), "other");
            Assert.Contains("not among the given public keys", ChainVerifier.VerifyLocal(dir.Path, foreign).Problem, StringComparison.Ordinal);
        }

        // A changed checkpoint (pointing at another hash) fails its signature.
        Execute(dir.Path, "UPDATE checkpoints SET event_hash = (SELECT hash FROM events WHERE id = 5), event_id = 5 WHERE n = 3");
        Assert.Contains("does not match its signature", ChainVerifier.VerifyLocal(dir.Path, keys).Problem, StringComparison.Ordinal);
        Restore(dir.Path, backup);

        // A deleted checkpoint in the middle breaks the numbering.
        Execute(dir.Path, "DELETE FROM checkpoints WHERE n = 2");
        Assert.Contains("checkpoints 2..2 are missing", ChainVerifier.VerifyLocal(dir.Path, keys).Problem, StringComparison.Ordinal);
        Restore(dir.Path, backup);

        // An old checkpoint replayed in place of the newest one (to hide events 7..8) fails: its number is signed.
        Execute(dir.Path, "UPDATE checkpoints SET (event_id, event_hash, time_us, previous, signature) = " +
            "(SELECT event_id, event_hash, time_us, previous, signature FROM checkpoints WHERE n = 3) WHERE n = 4");
        Assert.Contains("does not match its signature", ChainVerifier.VerifyLocal(dir.Path, keys).Problem, StringComparison.Ordinal);
        Restore(dir.Path, backup);

        // Checkpoint 1 removed with the oldest events (not by retention: the anchor did not move).
        Execute(dir.Path, "DELETE FROM checkpoints WHERE n = 1");
        Assert.Contains("checkpoints before 2 are missing", ChainVerifier.VerifyLocal(dir.Path, keys).Problem, StringComparison.Ordinal);
        Restore(dir.Path, backup);
        Assert.True(ChainVerifier.VerifyLocal(dir.Path, keys).Intact);
    }

    private static EventStoreOptions Options(int every = 5) => new()
    {
        BatchInterval = TimeSpan.FromMilliseconds(10),
        RetainFor = null, // the test events are dated 2025: retention would delete them meanwhile
        MaxEvents = null,
        Checkpoints = new CheckpointOptions { ReplicaId = ReplicaId, EveryEvents = every, Interval = TimeSpan.FromHours(1) },
    };

    /// <summary>Writes <paramref name="batch"/> events in one commit, then <paramref name="more"/> one by one, closes the store; returns the public key.</summary>
    private static async Task<string> WriteAsync(string directory, int batch, int more, EventStoreOptions? options = null)
    {
        await using var store = EventStore.Open(directory, options ?? Options());
        for (var i = 1; i <= batch; i++)
        {
            store.TryWrite(Events.Make(i));
        }

        await store.FlushAsync();
        for (var i = 1; i <= more; i++)
        {
            Assert.True(await store.WriteAndWaitCommittedAsync(Events.Make(batch + i), CancellationToken.None));
        }

        return store.Signer!.PublicKeyPem;
    }

    /// <summary>What an insider without the key can do after an edit: recompute every hash so the chain is consistent again.</summary>
    private static void RecomputeHashes(string directory)
    {
        var connectionString = $"Data Source={Path.Combine(directory, "events.db")};Pooling=False";
        using var reader = new EventReader(connectionString);
        var rows = reader.ReadStored(0, 10_000);
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        var previous = EventChain.Genesis;
        var scratch = new ArrayBufferWriter<byte>();
        foreach (var row in rows)
        {
            previous = EventChain.Next(previous, row.Id, row.Event, scratch);
            using var update = connection.CreateCommand();
            update.CommandText = "UPDATE events SET hash = $hash WHERE id = $id";
            update.Parameters.AddWithValue("$hash", previous);
            update.Parameters.AddWithValue("$id", row.Id);
            update.ExecuteNonQuery();
        }
    }

    private static void Restore(string directory, string backup)
    {
        SqliteConnection.ClearAllPools();
        File.Copy(backup, Path.Combine(directory, "events.db"), overwrite: true);
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
