using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using ProxyGuard.FunctionalTests.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 5 (issues 17 and 18): an insider with write access to the central PostgreSQL event store or a
/// replica's data directory tries to hide what an agent did so that <c>events verify</c> still says OK. Each test ran
/// against the build it was written against (bfc545f) and failed there because the attack worked, unless it says
/// otherwise.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound5StoreTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;
    private readonly ITestOutputHelper _output;

    public RedTeamRound5StoreTests(AuditFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    /// <summary>
    /// FINDING R5-1 (high, tamper evidence): <c>events verify --events-store</c> walked only the replicas listed in
    /// <c>proxyguard_replicas</c>. An insider who deleted a replica's row there (one statement) could then edit or
    /// delete any of that replica's events: verify printed "no replica has shipped events yet" and exited 0, while
    /// <c>/api/events</c> kept serving the edited rows. Expected: stored events of a replica without its registration
    /// are a break.
    /// </summary>
    [RequiresPostgresFact]
    public async Task Events_of_a_replica_whose_registration_row_was_deleted_are_not_silently_skipped_by_verify()
    {
        await using var pg = await PostgresServer.StartAsync();
        await ShipTenEventsAsync("r5-1", pg, "r5-one");
        var central = new[] { "events", "verify", "--events-store", pg.Url };
        await AssertVerifyAsync(central, 0, "ok: replica r5-one: 10 events, chain intact");

        // The insider rewrites what the agent did, then removes the replica's registration (its cursor and anchor).
        await PostgresAsync(pg, "UPDATE proxyguard_events SET decision = 'allow', path = '/innocent' WHERE replica_id = 'r5-one' AND local_id = 4", 1);
        await PostgresAsync(pg, "DELETE FROM proxyguard_replicas WHERE replica_id = 'r5-one'", 1);
        await AssertVerifyAsync(central, 1, "BROKEN: replica r5-one", "registration");
    }

    /// <summary>
    /// FINDING R5-2 (high, tamper evidence): the chain starts after its anchor, which retention moves to the last
    /// event it deleted. An insider could move the anchor forward onto a stored event (set anchor id and hash to
    /// that event's own id and hash: no hash to recompute) and every event up to it was left unchecked while still
    /// stored and served: edited rows passed as "chain intact", in PostgreSQL and in the local SQLite store. Expected:
    /// an event stored at or before the anchor (retention deletes them with the move) is a break.
    /// </summary>
    [RequiresPostgresFact]
    public async Task Moving_the_chain_anchor_over_stored_events_does_not_hide_an_edit_from_verify()
    {
        await using var pg = await PostgresServer.StartAsync();
        var dataDirectory = await ShipTenEventsAsync("r5-2", pg, "r5-two");
        var central = new[] { "events", "verify", "--events-store", pg.Url };
        var local = new[] { "events", "verify", "--data-dir", dataDirectory };
        await AssertVerifyAsync(central, 0, "ok: replica r5-two: 10 events, chain intact");
        await AssertVerifyAsync(local, 0, "ok: local store");

        await PostgresAsync(pg, "UPDATE proxyguard_events SET decision = 'allow', path = '/innocent' WHERE replica_id = 'r5-two' AND local_id = 3", 1);
        await AssertVerifyAsync(central, 1, "BROKEN: replica r5-two: at id 3"); // control: the edit alone is found
        await PostgresAsync(pg,
            "UPDATE proxyguard_replicas SET anchor_id = 5, anchor_hash = (SELECT hash FROM proxyguard_events WHERE replica_id = 'r5-two' AND local_id = 5) WHERE replica_id = 'r5-two'", 1);
        await AssertVerifyAsync(central, 1, "BROKEN: replica r5-two", "anchor");

        await SqliteAsync(dataDirectory, "UPDATE events SET decision = 'allow', path = '/innocent' WHERE id = 3");
        await AssertVerifyAsync(local, 1, "BROKEN: local store", "at id 3"); // control
        await SqliteAsync(dataDirectory, "UPDATE chain SET id = 5, hash = (SELECT hash FROM events WHERE id = 5) WHERE key = 'anchor'");
        await AssertVerifyAsync(local, 1, "BROKEN: local store", "anchor");
    }

    /// <summary>
    /// FINDING R5-6 (medium, tamper evidence, fixed): the newest events of a replica could be removed centrally without
    /// a trace. <c>verify</c> compares the chain's head with <c>shipped_through</c>, which lives in the same database: an
    /// insider deletes the last events and lowers <c>shipped_through</c> to match (or deletes the replica's events and
    /// its registration together), and verify says "chain intact". The replica does not ship them again while it runs
    /// (it only rereads the cursor after a failure). Only a witness outside the database can tell. Fixed: verify with
    /// the replica's data directory (<c>--events-store URL --data-dir DIR</c>) compares the central chain with what the
    /// replica's own store says it shipped (seen failing before the fix: exit 0, "chain intact").
    /// </summary>
    [RequiresPostgresFact]
    public async Task Truncating_a_replicas_newest_events_and_its_shipped_cursor_is_reported()
    {
        await using var pg = await PostgresServer.StartAsync();
        var dataDirectory = await ShipTenEventsAsync("r5-6", pg, "r5-six");
        var withWitness = new[] { "events", "verify", "--events-store", pg.Url, "--data-dir", dataDirectory, "--replica-id", "r5-six" };
        await AssertVerifyAsync(withWitness, 0, "ok: replica r5-six: 10 events, chain intact", "ok: replica r5-six against its local store");

        await PostgresAsync(pg, "DELETE FROM proxyguard_events WHERE replica_id = 'r5-six' AND local_id > 7", 3);
        await PostgresAsync(pg, "UPDATE proxyguard_replicas SET shipped_through = 7 WHERE replica_id = 'r5-six'", 1);
        await AssertVerifyAsync(withWitness, 1, "BROKEN: replica r5-six against its local store", "events 8..10 were deleted centrally");

        // The other form: every event of the replica and its registration deleted.
        await PostgresAsync(pg, "DELETE FROM proxyguard_events WHERE replica_id = 'r5-six'", 7);
        await PostgresAsync(pg, "DELETE FROM proxyguard_replicas WHERE replica_id = 'r5-six'", 1);
        await AssertVerifyAsync(withWitness, 1, "BROKEN: replica r5-six against its local store", "holds no event and no registration");
    }

    /// <summary>
    /// R5-6 with signed checkpoints and only the public key (no access to the replica): the insider truncates the tail
    /// and lowers the cursor as above; a shipped checkpoint still vouches for the deleted events. Forged, changed and
    /// renumbered checkpoint rows fail their signature; deleting the covering checkpoints as well is a truncation of the
    /// checkpoint chain, which the replica's local store (the witness) reports.
    /// </summary>
    [RequiresPostgresFact]
    public async Task A_truncated_tail_is_reported_by_signed_checkpoints_and_deleted_checkpoints_by_the_replicas_store()
    {
        await using var pg = await PostgresServer.StartAsync();
        var dataDirectory = await ShipTenEventsAsync("r5-6cp", pg, "r5-six-cp", "--events-checkpoints", "--events-checkpoint-every", "4");
        var publicKey = Path.Combine(_f.Dir.Path, "r5-6cp.pub");
        var export = await Cli.RunAsync(_f.Dir.Path, ["events", "checkpoint-key", "--data-dir", dataDirectory, "--out", publicKey]);
        Assert.True(export.ExitCode == 0, export.All);
        Assert.DoesNotContain("PRIVATE", await File.ReadAllTextAsync(publicKey), StringComparison.Ordinal);
        var withKey = new[] { "events", "verify", "--events-store", pg.Url, "--public-key", publicKey };
        await AssertVerifyAsync(withKey, 0, "ok: replica r5-six-cp: 10 events, chain intact", "signed checkpoints verified", "event 10,");

        await PostgresAsync(pg, "DELETE FROM proxyguard_events WHERE replica_id = 'r5-six-cp' AND local_id > 7", 3);
        await PostgresAsync(pg, "UPDATE proxyguard_replicas SET shipped_through = 7 WHERE replica_id = 'r5-six-cp'", 1);
        await AssertVerifyAsync(["events", "verify", "--events-store", pg.Url], 0, "chain intact"); // the chain alone cannot tell
        await AssertVerifyAsync(withKey, 1, "BROKEN: replica r5-six-cp: at id 8", "signed checkpoint");

        // A checkpoint row changed to cover only what is left fails its signature.
        await PostgresAsync(pg,
            "UPDATE proxyguard_checkpoints SET local_id = 7, event_hash = (SELECT hash FROM proxyguard_events WHERE replica_id = 'r5-six-cp' AND local_id = 7) " +
            "WHERE replica_id = 'r5-six-cp' AND n = (SELECT max(n) FROM proxyguard_checkpoints WHERE replica_id = 'r5-six-cp')", 1);
        await AssertVerifyAsync(withKey, 1, "BROKEN: replica r5-six-cp", "does not match its signature");

        // Deleting every checkpoint past event 7: the public key alone no longer sees the tail (the checkpoint chain was
        // truncated too), but the replica's store says which checkpoints it shipped.
        await PostgresAsync(pg, "DELETE FROM proxyguard_checkpoints WHERE replica_id = 'r5-six-cp' AND local_id >= 7", -1);
        // (Since R8F-1 the public key alone also reports a replica left without any checkpoint.)
        await AssertVerifyAsync(["events", "verify", "--events-store", pg.Url, "--public-key", publicKey, "--data-dir", dataDirectory], 1,
            "BROKEN: replica r5-six-cp");
        await AssertVerifyAsync(["events", "verify", "--events-store", pg.Url, "--data-dir", dataDirectory], 1,
            "BROKEN: replica r5-six-cp against its local store");
    }

    /// <summary>
    /// FINDING R5-7 (low, fixed): the central cursor (<c>seq</c>) was in no hash, so swapping two events' cursor values
    /// reordered a replica's events in <c>/api/events</c> unnoticed. Verify now requires the cursor to increase with the
    /// replica's local id (seen failing before the fix: exit 0).
    /// </summary>
    [RequiresPostgresFact]
    public async Task Reordering_a_replicas_events_in_the_central_cursor_is_reported()
    {
        await using var pg = await PostgresServer.StartAsync();
        await ShipTenEventsAsync("r5-7", pg, "r5-seven");
        var central = new[] { "events", "verify", "--events-store", pg.Url };
        await AssertVerifyAsync(central, 0, "ok: replica r5-seven: 10 events, chain intact");

        // Swap the cursor values of events 3 and 4 (through negative values: seq is unique).
        await PostgresAsync(pg,
            "UPDATE proxyguard_events SET seq = -seq WHERE replica_id = 'r5-seven' AND local_id IN (3, 4); " +
            "UPDATE proxyguard_events e SET seq = -(SELECT o.seq FROM proxyguard_events o WHERE o.replica_id = e.replica_id AND o.local_id = 7 - e.local_id) " +
            "WHERE replica_id = 'r5-seven' AND local_id IN (3, 4)", 4);
        await AssertVerifyAsync(central, 1, "BROKEN: replica r5-seven: at id 4", "reordered");

        // Swapped back, the chain is intact again; moving the newest event far ahead in the cursor leaves a hole.
        await PostgresAsync(pg,
            "UPDATE proxyguard_events SET seq = -seq WHERE replica_id = 'r5-seven' AND local_id IN (3, 4); " +
            "UPDATE proxyguard_events e SET seq = -(SELECT o.seq FROM proxyguard_events o WHERE o.replica_id = e.replica_id AND o.local_id = 7 - e.local_id) " +
            "WHERE replica_id = 'r5-seven' AND local_id IN (3, 4)", 4);
        await AssertVerifyAsync(central, 0, "ok: replica r5-seven: 10 events, chain intact");
        await PostgresAsync(pg, "UPDATE proxyguard_events SET seq = seq + 1000 WHERE replica_id = 'r5-seven' AND local_id = 10", 1);
        await AssertVerifyAsync(central, 1, "ok: replica r5-seven: 10 events, chain intact", "BROKEN: central cursor", "renumbered");
    }

    /// <summary>Starts a replica, sends ten requests through it, waits until they are shipped, stops it; returns its data directory.</summary>
    private async Task<string> ShipTenEventsAsync(string name, PostgresServer pg, string replicaId, params string[] extra)
    {
        var proxy = await ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, name), _f.Policy,
            ["--resolve", "origin.test=127.0.0.1", "--events-store", pg.Url, "--replica-id", replicaId, .. extra], AuditFixture.Environment);
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var reply = await Traffic.GetAsync(proxy, $"http://localhost:{_f.Origin.HttpPort}/echo/{name}/{i}");
                Assert.Equal(200, reply.Status);
            }

            await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, replicaId) >= 10, "10 events shipped");
        }
        finally
        {
            proxy.Signal(15);
            await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60));
            await proxy.DisposeAsync();
        }

        return proxy.DataDirectory;
    }

    private static async Task<long> CentralCountAsync(PostgresServer pg, string replicaId)
    {
        try
        {
            await using var connection = new NpgsqlConnection(pg.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT count(*) FROM proxyguard_events WHERE replica_id = $1", connection);
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

    private static async Task SqliteAsync(string dataDirectory, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "events.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
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

/// <summary>Red team round 5 from inside a sandbox: attacks on the policy's budgets through the running proxy.</summary>
[Collection("proxy")]
public sealed class RedTeamRound5Tests : IClassFixture<PolicyOrigin>
{
    private readonly PolicyOrigin _o;

    public RedTeamRound5Tests(PolicyOrigin origin)
    {
        _o = origin;
    }

    /// <summary>
    /// FINDING R5-3 (medium, denial of service across clients): the budget ledger holds at most
    /// <c>PROXYGUARD_LIMIT_MAX_BUDGET_KEYS</c> keys for the whole process, and a key stays busy for its window. One
    /// sandbox allowed a wildcard (<c>*.r5.test</c>) and a budget per client and host fills the table alone: each
    /// made-up name is a new key, counted even though the name does not resolve (502), so it never touches an upstream.
    /// Then every other client's first request to any budgeted host is refused 503 <c>over-capacity</c> until the
    /// attacker's window ends (up to 168 h). With the default 100 000 keys that takes one sandbox 100 000 requests.
    /// Expected: one client cannot take every key; its own new keys are refused first.
    /// Fixed: a client may hold at most half of the keys the other clients leave free.
    /// </summary>
    [Fact]
    public async Task One_client_cannot_fill_the_budget_key_table_and_lock_other_clients_out()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, """
            rules:
              - name: origin
                hosts: [localhost, "*.r5.test"]
                ports: [{HTTP}]
                action: allow
            budgets:
              - name: per-host
                requests: 1000/1h
            """, new Dictionary<string, string> { ["PROXYGUARD_LIMIT_MAX_BUDGET_KEYS"] = "20" });

        // The attacker (source 127.0.0.1): 25 made-up names under the wildcard.
        var last = "";
        for (var i = 0; i < 25; i++)
        {
            last = await RawAsync(proxy, IPAddress.Loopback, $"http://h{i}.r5.test:{_o.Origin.HttpPort}/r5-3-fill-{i}");
        }

        // Past its share of the table, the attacker's own new keys are refused.
        Assert.True(last.StartsWith("HTTP/1.1 503", StringComparison.Ordinal), last);
        Assert.Contains("X-ProxyGuard-Reason: over-capacity", last, StringComparison.OrdinalIgnoreCase);

        // The victim: another source address, an ordinary request to an allowed host.
        var victim = await RawAsync(proxy, IPAddress.Parse("127.0.0.2"), _o.HttpUrl("/echo/r5-3-victim"));
        Assert.True(victim.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), victim);
    }

    /// <summary>
    /// FINDING R5-4 (high, budget bypass): a request whose body is streamed without a length (<c>Transfer-Encoding:
    /// chunked</c>, not buffered for scanning) is counted when it ends, so it was checked with a cost of 0 bytes, and
    /// a cost of 0 never exceeds a limit: once the upload budget was spent, every further chunked upload still went
    /// out whole (measured: 5 MB after 5 MB against <c>1000/1h</c>), not just the documented one that runs over.
    /// Expected: a streamed body needs room in the budget; the second upload is refused 429 and never reaches the
    /// origin. (Since R5-5 the first one is also counted while it flows, and cut off if it does not fit:
    /// <c>StreamedBudgetTests</c>; here it fits exactly and spends the budget.)
    /// </summary>
    [Fact]
    public async Task Once_an_upload_budget_is_spent_a_chunked_upload_is_refused()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, """
            rules:
              - name: origin
                hosts: [localhost]
                ports: [{HTTP}]
                action: allow
            budgets:
              - name: small-uploads
                upload_bytes: 1000/1h
            """);
        var body = new string('a', 1000);
        var first = await RawAsync(proxy, IPAddress.Loopback, _o.HttpUrl("/echo/r5-4-first"), "POST", body);
        Assert.True(first.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), first);
        var second = await RawAsync(proxy, IPAddress.Loopback, _o.HttpUrl("/echo/r5-4-second"), "POST", body);
        Assert.True(second.StartsWith("HTTP/1.1 429", StringComparison.Ordinal), second);
        Assert.Contains("X-ProxyGuard-Reason: budget-exceeded", second, StringComparison.OrdinalIgnoreCase);
        Assert.False(_o.OriginSaw("r5-4-second"), "the second chunked upload reached the origin");

        // Control: a request without a body is not refused by an upload budget alone.
        var get = await RawAsync(proxy, IPAddress.Loopback, _o.HttpUrl("/echo/r5-4-get"));
        Assert.True(get.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), get);
    }

    /// <summary>
    /// Sends one plain-HTTP request from <paramref name="source"/> (with <paramref name="chunkedBody"/>, chunked) and
    /// returns the response.
    /// </summary>
    private static async Task<string> RawAsync(ProxyProcess proxy, IPAddress source, string url, string method = "GET", string? chunkedBody = null)
    {
        var uri = new Uri(proxy.ProxyUrl);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(source, 0));
        await socket.ConnectAsync(IPAddress.Parse(uri.Host), uri.Port);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var target = new Uri(url);
        var request = new StringBuilder($"{method} {url} HTTP/1.1\r\nHost: {target.Authority}\r\nConnection: close\r\n");
        if (chunkedBody is not null)
        {
            request.Append("Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (var i = 0; i < chunkedBody.Length; i += 1000)
            {
                var chunk = chunkedBody.Substring(i, Math.Min(1000, chunkedBody.Length - i));
                request.Append(chunk.Length.ToString("x", CultureInfo.InvariantCulture)).Append("\r\n").Append(chunk).Append("\r\n");
            }

            request.Append("0\r\n\r\n");
        }
        else
        {
            request.Append("\r\n");
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await reader.ReadToEndAsync(cts.Token);
    }
}
