using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;
using ProxyGuard.FunctionalTests.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 8 against the fleet features (issue 17) added on 2026-12-03: signed checkpoints, <c>events verify
/// --public-key</c> and the replica's data directory as a witness (<c>--data-dir</c> with <c>--events-store</c>).
/// The attacker is an insider who can write to the central PostgreSQL but holds neither a replica's data directory nor
/// its private key. Written against c6d0b0b. A test named as a finding (R8F-N) is skipped while the finding is open;
/// each was run with its skip removed and failed because the attack worked. The others held and are kept as passing tests.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound8FleetTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;
    private readonly ITestOutputHelper _output;

    public RedTeamRound8FleetTests(AuditFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    /// <summary>
    /// FINDING R8F-1 (medium, tamper evidence with the public key only): a replica ran with signed checkpoints (ten
    /// events, a checkpoint every four and one at close). The insider deletes the replica's newest events, lowers its
    /// shipped cursor and deletes every one of its checkpoint rows (three statements, no key needed). <c>events verify
    /// --events-store URL --public-key KEY</c> then prints "chain intact, no signed checkpoint yet" and exits 0: an
    /// auditor who holds only the public key cannot tell "checkpoints were never on" from "every checkpoint was
    /// deleted", so the checkpoints add nothing against an insider who removes them all (deleting only the newest is
    /// reported with the witness, round 5). Expected: with <c>--public-key</c>, a replica that has shipped events but
    /// has no stored checkpoint is a break (or at least not "ok"), or the registration records that the replica signs.
    /// </summary>
    /// <remarks>Fixed: with public keys, a replica whose events no signed checkpoint vouches for is a break (checkpointing
    /// signs one with a replica's first event, and retention keeps the newest at the anchor).</remarks>
    [RequiresPostgresFact]
    public async Task Deleting_every_checkpoint_of_a_replica_is_not_accepted_by_verify_with_the_public_key()
    {
        await using var pg = await PostgresServer.StartAsync();
        var (dataDirectory, publicKey) = await ShipSignedAsync("r8f-1", pg, "r8f-one", kill: false);
        var withKey = new[] { "events", "verify", "--events-store", pg.Url, "--public-key", publicKey };
        await AssertVerifyAsync(withKey, 0, "ok: replica r8f-one: 10 events, chain intact", "signed checkpoints verified");
        Assert.True(Directory.Exists(dataDirectory));

        await PostgresAsync(pg, "DELETE FROM proxyguard_events WHERE replica_id = 'r8f-one' AND local_id > 3", 7);
        await PostgresAsync(pg, "UPDATE proxyguard_replicas SET shipped_through = 3 WHERE replica_id = 'r8f-one'", 1);
        await PostgresAsync(pg, "DELETE FROM proxyguard_checkpoints WHERE replica_id = 'r8f-one'", -1);
        await AssertVerifyAsync(withKey, 1, "BROKEN: replica r8f-one");
    }

    /// <summary>
    /// FINDING R8F-2 (high, the witness lags): the local store is meant to write down what it has shipped (events and
    /// checkpoints) with each commit, but only a clean shutdown brought it up to date here: after ten events and two
    /// checkpoints were shipped and the replica was SIGKILLed (OOM kill, node loss, eviction past the grace period),
    /// its data directory said shipped = 0 and checkpoints_shipped = 0 (from reading the writer: the marker is written
    /// inside the next event commit with what was shipped by then, so a burst shipped after its last commit, as here,
    /// stays unrecorded until a clean shutdown). Measured: the
    /// insider deleted all ten events and both checkpoints and set the shipped cursor to 0. In general the insider deletes exactly the events
    /// and checkpoints past what the witness recorded and lowers the shipped cursor; <c>events verify --events-store
    /// --public-key --data-dir</c> says both chains are intact and exits 0, although the local store still holds the
    /// deleted events, with the local checkpoint that covers them. Expected: local events (and local checkpoints) past
    /// the end of the central chain are reported when the replica is not running to ship them (or at least printed as
    /// "not shipped"), instead of the comparison stopping at the lagging shipped marker.
    /// </summary>
    /// <remarks>
    /// Fixed: every shipping round that confirms events or checkpoints asks the writer for a small commit of the markers
    /// (before, they waited for the next event's commit). The replica is still killed right after the shipment, once its
    /// store shows the markers (before the fix they stayed at 0 until a clean shutdown, so the wait below timed out);
    /// then the insider's truncation past what the witness holds is reported.
    /// </remarks>
    [RequiresPostgresFact]
    public async Task After_a_sigkill_the_replicas_store_still_reports_a_centrally_deleted_tail()
    {
        await using var pg = await PostgresServer.StartAsync();
        var (dataDirectory, publicKey) = await ShipSignedAsync("r8f-2", pg, "r8f-two", kill: true);
        var full = new[] { "events", "verify", "--events-store", pg.Url, "--public-key", publicKey, "--data-dir", dataDirectory, "--replica-id", "r8f-two" };
        await AssertVerifyAsync(full, 0, "ok: replica r8f-two: 10 events, chain intact");

        var (shipped, checkpointsShipped, localCheckpoints) = await LocalMetaAsync(dataDirectory);
        _output.WriteLine($"witness after SIGKILL: shipped={shipped} checkpoints_shipped={checkpointsShipped} local checkpoints={localCheckpoints}");
        Assert.Equal(10, shipped);

        await PostgresAsync(pg, "DELETE FROM proxyguard_events WHERE replica_id = 'r8f-two' AND local_id > 3", 7);
        await PostgresAsync(pg, "DELETE FROM proxyguard_checkpoints WHERE replica_id = 'r8f-two' AND local_id > 3", -1);
        await PostgresAsync(pg, "UPDATE proxyguard_replicas SET shipped_through = 3 WHERE replica_id = 'r8f-two'", 1);
        await AssertVerifyAsync(full, 1, "BROKEN: replica r8f-two");
    }

    /// <summary>
    /// Held: checkpoint rows rewritten without the key. A changed key id, a checkpoint moved under another replica's
    /// signed name and a checkpoint with a forged (zero) signature are each reported by verify with
    /// the public key alone.
    /// </summary>
    [RequiresPostgresFact]
    public async Task Checkpoint_rows_rewritten_without_the_key_are_reported()
    {
        await using var pg = await PostgresServer.StartAsync();
        var (_, publicKey) = await ShipSignedAsync("r8f-held", pg, "r8f-held", kill: false);
        var withKey = new[] { "events", "verify", "--events-store", pg.Url, "--public-key", publicKey };
        await AssertVerifyAsync(withKey, 0, "ok: replica r8f-held: 10 events, chain intact", "signed checkpoints verified");
        await PostgresAsync(pg, "CREATE TABLE saved AS SELECT * FROM proxyguard_checkpoints", -1);
        const string restore = "DELETE FROM proxyguard_checkpoints; INSERT INTO proxyguard_checkpoints SELECT * FROM saved";

        await PostgresAsync(pg, "UPDATE proxyguard_checkpoints SET key_id = decode('00112233445566778899aabbccddeeff', 'hex') WHERE n = 1", 1);
        await AssertVerifyAsync(withKey, 1, "BROKEN: replica r8f-held", "not among the given public keys");
        await PostgresAsync(pg, restore, -1);
        await AssertVerifyAsync(withKey, 0, "ok: replica r8f-held: 10 events, chain intact");

        await PostgresAsync(pg, "UPDATE proxyguard_checkpoints SET signed_replica_id = 'r8f-other' WHERE n = 1", 1);
        await AssertVerifyAsync(withKey, 1, "BROKEN: replica r8f-held");
        await PostgresAsync(pg, restore, -1);

        await PostgresAsync(pg, "UPDATE proxyguard_checkpoints SET signature = decode(repeat('00', 64), 'hex') WHERE n = 1", 1);
        await AssertVerifyAsync(withKey, 1, "BROKEN: replica r8f-held", "does not match its signature");
    }

    /// <summary>Starts a replica with checkpoints every four events, sends ten requests, waits until events and checkpoints are shipped, stops it (SIGTERM, or SIGKILL); returns its data directory and exported public key.</summary>
    private async Task<(string DataDirectory, string PublicKey)> ShipSignedAsync(string name, PostgresServer pg, string replicaId, bool kill)
    {
        var proxy = await ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, name), _f.Policy,
            ["--resolve", "origin.test=127.0.0.1", "--events-store", pg.Url, "--replica-id", replicaId,
             "--events-checkpoints", "--events-checkpoint-every", "4"], AuditFixture.Environment);
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var reply = await Traffic.GetAsync(proxy, $"http://localhost:{_f.Origin.HttpPort}/echo/{name}/{i}");
                Assert.Equal(200, reply.Status);
            }

            await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, "proxyguard_events", replicaId) >= 10, "10 events shipped");
            await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, "proxyguard_checkpoints", replicaId) >= 1, "a checkpoint shipped");
            if (kill)
            {
                // The witness: the replica's store records what was shipped (R8F-2) before it is killed.
                await Traffic.WaitUntilAsync(async () => (await LocalMetaAsync(proxy.DataDirectory)).Shipped >= 10, "the shipped marker written locally");
            }
        }
        finally
        {
            if (kill)
            {
                proxy.KillHard();
            }
            else
            {
                proxy.Signal(15);
            }

            await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60));
            await proxy.DisposeAsync();
        }

        var publicKey = Path.Combine(_f.Dir.Path, name + ".pub");
        var export = await Cli.RunAsync(_f.Dir.Path, ["events", "checkpoint-key", "--data-dir", proxy.DataDirectory, "--out", publicKey]);
        Assert.True(export.ExitCode == 0, export.All);
        return (proxy.DataDirectory, publicKey);
    }

    private static async Task<(long Shipped, long CheckpointsShipped, long LocalCheckpoints)> LocalMetaAsync(string dataDirectory)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "events.db")};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT (SELECT value FROM meta WHERE key = 'shipped'), (SELECT value FROM meta WHERE key = 'checkpoints_shipped'), (SELECT count(*) FROM checkpoints)";
        await using var r = await command.ExecuteReaderAsync();
        Assert.True(await r.ReadAsync());
        return (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2));
    }

    private static async Task<long> CentralCountAsync(PostgresServer pg, string table, string replicaId)
    {
        try
        {
            await using var connection = new NpgsqlConnection(pg.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"SELECT count(*) FROM {table} WHERE replica_id = $1", connection);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = replicaId });
            return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }
        catch (PostgresException)
        {
            return 0; // the schema is not there yet
        }
    }

    private async Task AssertVerifyAsync(string[] args, int exitCode, params string[] expected)
    {
        var result = await Cli.RunAsync(_f.Dir.Path, args);
        _output.WriteLine($"$ proxyguard {string.Join(' ', args)}\n{result.All}");
        Assert.True(result.ExitCode == exitCode, $"exit {result.ExitCode}, expected {exitCode}:\n{result.All}");
        foreach (var text in expected)
        {
            Assert.Contains(text, result.Stdout, StringComparison.Ordinal);
        }
    }

    private static async Task PostgresAsync(PostgresServer pg, string sql, int rows)
    {
        await using var connection = new NpgsqlConnection(pg.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var affected = await command.ExecuteNonQueryAsync();
        if (rows >= 0)
        {
            Assert.Equal(rows, affected);
        }
    }
}
