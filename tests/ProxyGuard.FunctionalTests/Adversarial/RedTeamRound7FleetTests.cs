using System.Globalization;
using System.Net;
using System.Text.Json;
using Npgsql;
using ProxyGuard.FunctionalTests.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 7 against the fleet features (issue 17): the central PostgreSQL event store, its cursor API, grants and
/// <c>events verify</c>, through the built binary and a real PostgreSQL on loopback. Written against 226b687. A test
/// named as a finding (R7F-N) is skipped while the finding is open; each was run with its skip removed and failed
/// because the attack worked. The others are attacks that held, kept as passing tests.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound7FleetTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;
    private readonly ITestOutputHelper _output;

    public RedTeamRound7FleetTests(AuditFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    /// <summary>
    /// FINDING R7F-1 (high, events lost without a trace): a replica that starts on a fresh (or lost, or restored)
    /// data directory under a replica id the central store already knows (<c>--replica-id</c> or
    /// <c>PROXYGUARD_REPLICA_ID</c>: a StatefulSet pod name with an <c>emptyDir</c> or a replaced volume, one value
    /// given to every pod of a Deployment) reads that id's <c>shipped_through</c> from PostgreSQL and marks its own,
    /// new local events up to that id as already shipped. They are never shipped: <c>/api/events</c> on every replica
    /// never shows them, the backlog metric says 0, and <c>events verify</c> says "chain intact" (the central chain ends
    /// at the old <c>shipped_through</c>). Measured: 5 events shipped by the first store, then 3 requests answered 200
    /// through the second one; none of the 3 reached PostgreSQL, verify exit 0. Two live replicas with one id lose
    /// events the same way (<c>ON CONFLICT DO NOTHING</c> keeps whichever copy of a local id arrived first).
    /// Expected: a local store that is behind the central cursor for its id (or a different chain under the same id) is
    /// refused loudly (the replica does not start, or does not ship and reports it), never marked as shipped.
    /// </summary>
    /// <remarks>
    /// Fixed: a data directory keeps an incarnation (a random value) and the central store binds a replica id to the
    /// incarnation that registered it. The attack is kept as written up to the second start; what the design changes is
    /// that the second data directory is refused at start with a one-line reason instead of answering requests whose
    /// events would be lost. The first life's events still verify, and the data directory ships under an id of its own.
    /// </remarks>
    [RequiresPostgresFact]
    public async Task A_fresh_data_directory_under_a_known_replica_id_does_not_silently_lose_its_first_events()
    {
        await using var pg = await PostgresServer.StartAsync();
        const string replica = "r7f-one";

        // The replica's first life: 5 events, shipped.
        await using (var first = await StartReplicaAsync("r7f1-first", pg, replica))
        {
            for (var i = 0; i < 5; i++)
            {
                Assert.Equal(200, (await Traffic.GetAsync(first, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-old/{i}")).Status);
            }

            await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, replica) >= 5, "5 events shipped");
            await StopAsync(first);
        }

        // Its data directory is gone (a new pod on a fresh volume); the id stays. The replica does not start, so no
        // request is answered whose event would be taken as already shipped.
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => StartReplicaAsync("r7f1-second", pg, replica));
        _output.WriteLine(refused.Message);
        Assert.Contains("cannot start: replica id r7f-one is registered in the central event store by another data directory", refused.Message, StringComparison.Ordinal);

        // The same data directory under an id of its own ships every answered request.
        await using var second = await StartReplicaAsync("r7f1-second", pg, "r7f-one-b");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(200, (await Traffic.GetAsync(second, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-new/{i}")).Status);
        }

        var seen = 0;
        try
        {
            await Traffic.WaitUntilAsync(async () =>
            {
                seen = (await second.EventsAsync()).Count(e => e.GetProperty("path").GetString()?.StartsWith("/echo/r7f1-new/", StringComparison.Ordinal) == true);
                return seen == 3;
            }, "the 3 new events in /api/events", timeoutSeconds: 15);
        }
        finally
        {
            _output.WriteLine($"new events in /api/events: {seen} of 3; central rows for {replica}: {await CentralCountAsync(pg, replica)}");
        }

        Assert.Equal(3, seen);
        await AssertVerifyAsync(["events", "verify", "--events-store", pg.Url], 0, "ok: replica r7f-one: 5 events, chain intact");
    }

    /// <summary>
    /// R7F-1, two live replicas given one id (one value for every pod of a Deployment): the second is refused at start
    /// while the first runs and ships; no event of the first is dropped for a copy of its local id.
    /// </summary>
    [RequiresPostgresFact]
    public async Task Two_live_replicas_with_one_id_the_second_is_refused_and_no_event_is_lost()
    {
        await using var pg = await PostgresServer.StartAsync();
        const string replica = "r7f-twin";
        await using var first = await StartReplicaAsync("r7f1-twin-a", pg, replica);
        Assert.Equal(200, (await Traffic.GetAsync(first, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-twin/0")).Status);

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => StartReplicaAsync("r7f1-twin-b", pg, replica));
        _output.WriteLine(refused.Message);
        Assert.Contains("replica id r7f-twin is registered in the central event store by another data directory", refused.Message, StringComparison.Ordinal);

        for (var i = 1; i < 4; i++)
        {
            Assert.Equal(200, (await Traffic.GetAsync(first, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-twin/{i}")).Status);
        }

        await Traffic.WaitUntilAsync(async () =>
            (await first.EventsAsync()).Count(e => e.GetProperty("path").GetString()?.StartsWith("/echo/r7f1-twin/", StringComparison.Ordinal) == true) == 4,
            "the 4 events in /api/events", timeoutSeconds: 15);

        // A restart of the first on its own data directory is not a second incarnation.
        await StopAsync(first);
        await using var again = await StartReplicaAsync("r7f1-twin-a", pg, replica);
        Assert.Equal(200, (await Traffic.GetAsync(again, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-twin/4")).Status);
        await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, replica) >= 5, "5 events shipped");
    }

    /// <summary>
    /// R7F-1 when PostgreSQL is down at start: the second data directory under a known id starts (the check cannot run)
    /// and answers requests, but once PostgreSQL is back it ships nothing and marks nothing as shipped: its events stay
    /// in its outbox, <c>/healthz</c> stays degraded, and the id's central chain is the first data directory's alone.
    /// </summary>
    [RequiresPostgresFact]
    public async Task A_second_data_directory_found_when_the_store_comes_back_ships_nothing_and_stays_degraded()
    {
        await using var pg = await PostgresServer.StartAsync();
        const string replica = "r7f-late";
        await using (var first = await StartReplicaAsync("r7f1-late-a", pg, replica))
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(200, (await Traffic.GetAsync(first, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-late/{i}")).Status);
            }

            await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, replica) >= 3, "3 events shipped");
            await StopAsync(first);
        }

        await pg.StopAsync();
        await using var second = await StartReplicaAsync("r7f1-late-b", pg, replica);
        Assert.Equal(200, (await Traffic.GetAsync(second, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f1-late-b/0")).Status);
        await pg.StartAgainAsync();

        await Task.Delay(TimeSpan.FromSeconds(4)); // several shipping rounds after PostgreSQL is back
        Assert.Equal(3, await CentralCountAsync(pg, replica));
        using var admin = second.AdminClient();
        var health = await (await admin.GetAsync("healthz")).Content.ReadAsStringAsync();
        _output.WriteLine(health);
        Assert.Contains("degraded: events-store-unreachable (1 events waiting to ship)", health, StringComparison.Ordinal);
        await AssertVerifyAsync(["events", "verify", "--events-store", pg.Url], 0, "ok: replica r7f-late: 3 events, chain intact");
    }

    /// <summary>
    /// R7F-4 while PostgreSQL is unreachable: grant calls answer 503 (nothing created or revoked), and a replica drops
    /// the grants it cached once it could not read them again for 5 s (fail closed); they work again when it can.
    /// </summary>
    [RequiresPostgresFact]
    public async Task Fleet_grants_fail_closed_while_the_central_store_is_unreachable()
    {
        await using var pg = await PostgresServer.StartAsync();
        await using var a = await StartReplicaAsync("r7f4-down", pg, "r7f-four-down", ["--resolve", "granted.r7f.test=127.0.0.1"]);
        var url = $"http://granted.r7f.test:{_f.Origin.HttpPort}/echo/r7f4-down";
        using var admin = a.AdminClient();
        var body = $$"""{"client":"*","host":"granted.r7f.test:{{_f.Origin.HttpPort}}","for":"30m","reason":"r7f-4 outage"}""";
        using (var create = await admin.PostAsync("api/grants", new StringContent(body, System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.Created, create.StatusCode);
        }

        Assert.Equal(200, (await Traffic.GetAsync(a, url)).Status);
        await pg.StopAsync();
        using (var list = await admin.GetAsync("api/grants"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, list.StatusCode);
        }

        using (var create = await admin.PostAsync("api/grants", new StringContent(body, System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, create.StatusCode);
        }

        Assert.True(await StatusWithinAsync(a, url, 403, TimeSpan.FromSeconds(9)), "the cached grant is dropped within 5 s of the store being unreachable");
        await pg.StartAgainAsync();
        Assert.True(await StatusWithinAsync(a, url, 200, TimeSpan.FromSeconds(5)), "the grant works again once the store answers");
    }

    /// <summary>
    /// FINDING R7F-2 (low, the API misreports a bad filter as an outage): <c>/api/events?client=%00</c> (a NUL in any
    /// filter: <c>client</c>, <c>host</c>, <c>decision</c>) on a replica with a central store is passed to PostgreSQL,
    /// which cannot hold a NUL in text and fails the query (22021). The replica answers <c>503</c> "the central event
    /// store is unreachable; retry", so <c>proxyguard events --follow</c> retries forever and monitoring sees an outage
    /// that is not there; the same query on a replica without a central store answers 200 with no events. Expected: the
    /// same answer as the local store (200, no events) or a 400 naming the filter; never "unreachable".
    /// </summary>
    [RequiresPostgresFact]
    public async Task A_nul_in_an_events_filter_is_not_reported_as_the_central_store_being_unreachable()
    {
        await using var pg = await PostgresServer.StartAsync();
        await using var proxy = await StartReplicaAsync("r7f2", pg, "r7f-two");
        Assert.Equal(200, (await Traffic.GetAsync(proxy, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f2")).Status);
        await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, "r7f-two") >= 1, "1 event shipped");

        using var admin = proxy.AdminClient();
        foreach (var filter in new[] { "client=%00", "host=a%00b", "decision=allow%00" })
        {
            using var response = await admin.GetAsync($"api/events?{filter}");
            var body = await response.Content.ReadAsStringAsync();
            _output.WriteLine($"GET /api/events?{filter} -> {(int)response.StatusCode} {body}");
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{filter}: {(int)response.StatusCode} {body}");

            // Fixed as a 400 naming the filter, the same on a replica without a central store.
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("must not contain control characters", body, StringComparison.Ordinal);
        }

        await using (var local = await ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, "r7f2-local"), _f.Policy, ["--resolve", "origin.test=127.0.0.1"], AuditFixture.Environment))
        {
            using var localAdmin = local.AdminClient();
            foreach (var filter in new[] { "client=%00", "host=a%00b", "decision=allow%00", "client=a%1Bb" })
            {
                using var response = await localAdmin.GetAsync($"api/events?{filter}");
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"local store, {filter}: {(int)response.StatusCode}");
            }
        }

        // Control: the store is reachable and the cursor serves the event.
        using var ok = await admin.GetAsync("api/events");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    /// <summary>
    /// FINDING R7F-3 (low, tamper evidence: attribution): the replica id is not part of an event's hash, so an insider
    /// who can write the central database renames a replica (its registration and its events, two statements) and
    /// <c>events verify</c> says "chain intact" for a replica that never existed; <c>/api/events</c> serves every event
    /// of that replica under the new name. The same moves one replica's whole history onto another name (for example
    /// a replica in another cluster or one that was retired). Nothing has to be recomputed. Expected: the chain covers
    /// the replica id (for example as the genesis predecessor), so a renamed chain breaks at its first event.
    /// </summary>
    /// <remarks>
    /// Fixed through signed checkpoints (each signs the replica id; the private key stays in the replica's data
    /// directory): with the public key, verify reports the renamed replica whether the insider renames its checkpoints
    /// too (they name another replica), leaves them (the old name keeps checkpoints without a registration), or deletes
    /// them (a replica with events and no signed checkpoint). An unsigned chain is unkeyed SHA-256: anyone who can write
    /// the database can recompute it under any name, so covering the id in the hash would not stop an insider; that
    /// limit is documented (operations.md, tamper evidence).
    /// </remarks>
    [RequiresPostgresFact]
    public async Task Renaming_a_replica_centrally_is_reported_by_verify()
    {
        await using var pg = await PostgresServer.StartAsync();
        string dataDirectory;
        await using (var proxy = await StartReplicaAsync("r7f3", pg, "r7f-three", ["--events-checkpoints", "--events-checkpoint-every", "2"]))
        {
            dataDirectory = proxy.DataDirectory;
            for (var i = 0; i < 4; i++)
            {
                Assert.Equal(200, (await Traffic.GetAsync(proxy, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f3/{i}")).Status);
            }

            await Traffic.WaitUntilAsync(async () => await CentralCountAsync(pg, "r7f-three") >= 4, "4 events shipped");
            await StopAsync(proxy);
        }

        var publicKey = Path.Combine(_f.Dir.Path, "r7f3.pub");
        var export = await Cli.RunAsync(_f.Dir.Path, ["events", "checkpoint-key", "--data-dir", dataDirectory, "--out", publicKey]);
        Assert.True(export.ExitCode == 0, export.All);
        var verify = new[] { "events", "verify", "--events-store", pg.Url };
        var signed = new[] { "events", "verify", "--events-store", pg.Url, "--public-key", publicKey };
        await AssertVerifyAsync(verify, 0, "ok: replica r7f-three: 4 events, chain intact");
        await AssertVerifyAsync(signed, 0, "ok: replica r7f-three: 4 events, chain intact");

        await PostgresAsync(pg, "UPDATE proxyguard_events SET replica_id = 'r7f-forged' WHERE replica_id = 'r7f-three'", 4);
        await PostgresAsync(pg, "UPDATE proxyguard_replicas SET replica_id = 'r7f-forged' WHERE replica_id = 'r7f-three'", 1);
        // The checkpoints left under the old name have no registration: reported even without the key.
        await AssertVerifyAsync(verify, 1, "BROKEN: replica r7f-three", "registration");
        await AssertVerifyAsync(signed, 1, "BROKEN: replica r7f-three");

        await PostgresAsync(pg, "UPDATE proxyguard_checkpoints SET replica_id = 'r7f-forged' WHERE replica_id = 'r7f-three'", -1);
        await AssertVerifyAsync(signed, 1, "BROKEN: replica r7f-forged", "signed for replica 'r7f-three'");

        await PostgresAsync(pg, "DELETE FROM proxyguard_checkpoints WHERE replica_id = 'r7f-forged'", -1);
        await AssertVerifyAsync(signed, 1, "BROKEN: replica r7f-forged", "no signed checkpoint");
    }

    /// <summary>
    /// FINDING R7F-4 (medium, a revoked grant keeps working): grants are kept per replica (each data directory's
    /// <c>grants.db</c>), while every other fleet surface is shared: the grant's creation event is in the central
    /// stream that any replica serves. An operator who revokes through another replica than the one that took the grant
    /// (any pod, a port-forward, a Service) gets <c>404 no active grant</c>, which reads as "already gone", and the
    /// agent keeps the access through the first replica until the grant ends (up to 7 days). <c>grant list</c> on the
    /// other replicas shows nothing active either. Expected: grants are fleet-wide with a central store (created,
    /// listed and revoked through any replica), or a revoke on a replica that does not hold the grant says so plainly.
    /// </summary>
    /// <remarks>
    /// Fixed: with a central store, grants are kept in PostgreSQL and each replica reads the active ones about once a
    /// second. What the design changes: the request through the granting replica is refused within the stated bound
    /// (2 s) rather than at once, and the other replica lists the grant and answers the revoke with 200.
    /// </remarks>
    [RequiresPostgresFact]
    public async Task A_grant_revoked_through_another_replica_stops_working_everywhere()
    {
        await using var pg = await PostgresServer.StartAsync();
        var extra = new[] { "--resolve", "granted.r7f.test=127.0.0.1" };
        await using var a = await StartReplicaAsync("r7f4-a", pg, "r7f-four-a", extra);
        await using var b = await StartReplicaAsync("r7f4-b", pg, "r7f-four-b", extra);
        var url = $"http://granted.r7f.test:{_f.Origin.HttpPort}/echo/r7f4";
        Assert.Equal(403, (await Traffic.GetAsync(a, url)).Status); // control: the policy does not allow this host

        using var adminA = a.AdminClient();
        using var create = await adminA.PostAsync("api/grants", new StringContent(
            $$"""{"client":"*","host":"granted.r7f.test:{{_f.Origin.HttpPort}}","for":"30m","reason":"r7f-4 ticket"}""",
            System.Text.Encoding.UTF8, "application/json"));
        var created = await create.Content.ReadAsStringAsync();
        Assert.True(create.StatusCode == HttpStatusCode.Created, created);
        var id = JsonDocument.Parse(created).RootElement.GetProperty("id").GetString();
        Assert.Equal(200, (await Traffic.GetAsync(a, url)).Status);

        // The other replica sees the grant, and honours it within the same bound.
        using var adminB = b.AdminClient();
        var listed = await (await adminB.GetAsync("api/grants")).Content.ReadAsStringAsync();
        Assert.Contains(id!, listed, StringComparison.Ordinal);
        Assert.True(await StatusWithinAsync(b, url, 200, TimeSpan.FromSeconds(2)), "the grant works through the other replica within 2 s");

        // The operator revokes through the other replica.
        using var revoke = await adminB.DeleteAsync($"api/grants/{id}");
        _output.WriteLine($"DELETE /api/grants/{id} on the other replica -> {(int)revoke.StatusCode} {await revoke.Content.ReadAsStringAsync()}");
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var refused = await StatusWithinAsync(a, url, 403, TimeSpan.FromSeconds(2));
        _output.WriteLine($"request through the granting replica after the revoke: {(refused ? "403" : "still allowed")} after {started.ElapsedMilliseconds} ms");
        Assert.True(refused, "the granting replica still honours the revoked grant after 2 s");
        Assert.Equal(403, (await Traffic.GetAsync(b, url)).Status);
        using var revokeAgain = await adminA.DeleteAsync($"api/grants/{id}");
        Assert.Equal(HttpStatusCode.NotFound, revokeAgain.StatusCode);
    }

    /// <summary>True once a request through <paramref name="proxy"/> answers <paramref name="status"/> within <paramref name="bound"/>.</summary>
    private static async Task<bool> StatusWithinAsync(ProxyProcess proxy, string url, int status, TimeSpan bound)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            if ((await Traffic.GetAsync(proxy, url)).Status == status)
            {
                return true;
            }

            if (clock.Elapsed > bound)
            {
                return false;
            }

            await Task.Delay(50);
        }
    }

    /// <summary>
    /// HELD: hostile cursor parameters on a replica with a central store. Negative, signed, non-numeric, empty,
    /// repeated and overflowing cursors are refused with 400; huge limits are clamped to the page maximum; a cursor
    /// past the end answers an empty page that keeps the cursor (never 5xx, never events from the start).
    /// </summary>
    [RequiresPostgresFact]
    public async Task Hostile_cursor_parameters_are_refused_or_clamped_never_a_server_error()
    {
        await using var pg = await PostgresServer.StartAsync();
        await using var proxy = await StartReplicaAsync("r7f-cursor", pg, "r7f-cursor");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(200, (await Traffic.GetAsync(proxy, $"http://localhost:{_f.Origin.HttpPort}/echo/r7f-cursor/{i}")).Status);
        }

        await Traffic.WaitUntilAsync(async () => (await proxy.EventsAsync()).Count >= 3, "3 events in /api/events");
        using var admin = proxy.AdminClient();
        foreach (var bad in new[]
                 {
                     "after=-1", "after=+1", "after=abc", "after=", "after=1.5", "after=0x10", "after=%201", "after=1&after=2",
                     "after=9223372036854775808", "after=99999999999999999999999999", "limit=-5", "limit=", "limit=1e3", "limit=%2B7",
                 })
        {
            using var response = await admin.GetAsync($"api/events?{bad}");
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        foreach (var (query, count) in new[] { ("limit=0", 1), ("limit=99999999999999999999999999", 3), ("limit=2147483648", 3), ("after=0&limit=1", 1) })
        {
            using var response = await admin.GetAsync($"api/events?{query}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var page = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(count, page.RootElement.GetProperty("events").GetArrayLength());
        }

        using (var end = await admin.GetAsync($"api/events?after={long.MaxValue}"))
        {
            Assert.Equal(HttpStatusCode.OK, end.StatusCode);
            using var page = JsonDocument.Parse(await end.Content.ReadAsStringAsync());
            Assert.Equal(0, page.RootElement.GetProperty("events").GetArrayLength());
            Assert.Equal(long.MaxValue, page.RootElement.GetProperty("next").GetInt64());
        }
    }

    /// <summary>
    /// HELD: the admin API's authentication on a fleet replica. No token, a wrong token, the token with a character
    /// more or less, another scheme, the token in the query string or in another header: 401 for the events, the
    /// policy, a grant and a reload; the unauthenticated probes reveal nothing of the store's address or credentials.
    /// </summary>
    [RequiresPostgresFact]
    public async Task The_admin_api_refuses_every_near_miss_of_the_token()
    {
        await using var pg = await PostgresServer.StartAsync();
        await using var proxy = await StartReplicaAsync("r7f-auth", pg, "r7f-auth");
        var token = ProxyProcess.AdminToken;
        using var http = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") };
        var attempts = new (string? Header, string? Value, string Query)[]
        {
            (null, null, ""),
            ("Authorization", "Bearer", ""),
            ("Authorization", "Bearer ", ""),
            ("Authorization", "Bearer wrong", ""),
            ("Authorization", "Bearer " + token[..^1], ""),
            ("Authorization", "Bearer " + token + "x", ""),
            ("Authorization", "Bearer " + token.ToUpperInvariant(), ""),
            ("Authorization", "Basic " + Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes("admin:" + token)), ""),
            ("Authorization", "Token " + token, ""),
            ("Authorization", token, ""),
            ("X-Admin-Token", token, ""),
            ("Proxy-Authorization", "Bearer " + token, ""),
            (null, null, "?token=" + token),
            (null, null, "?access_token=" + token),
        };
        foreach (var (header, value, query) in attempts)
        {
            foreach (var (method, path) in new[] { (HttpMethod.Get, "api/events"), (HttpMethod.Get, "api/policy"), (HttpMethod.Post, "api/policy/reload"), (HttpMethod.Get, "api/grants") })
            {
                using var request = new HttpRequestMessage(method, path + query);
                if (header is not null)
                {
                    request.Headers.TryAddWithoutValidation(header, value);
                }

                using var response = await http.SendAsync(request);
                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path}{query} with {header}: {(int)response.StatusCode}");
            }
        }

        // Control: the token itself works, and the probes name no store address, user or password.
        using var admin = proxy.AdminClient();
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("api/events")).StatusCode);
        foreach (var probe in new[] { "healthz", "readyz", "livez", "metrics" })
        {
            var text = await (await http.GetAsync(probe)).Content.ReadAsStringAsync();
            Assert.DoesNotContain($"127.0.0.1:{pg.Port.ToString(CultureInfo.InvariantCulture)}", text, StringComparison.Ordinal);
            Assert.DoesNotContain("postgres://", text, StringComparison.Ordinal);
            Assert.DoesNotContain(PostgresServer.User + "@", text, StringComparison.Ordinal);
        }
    }

    private Task<ProxyProcess> StartReplicaAsync(string name, PostgresServer pg, string replicaId, IEnumerable<string>? extra = null) =>
        ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, name), _f.Policy,
            ["--resolve", "origin.test=127.0.0.1", "--events-store", pg.Url, "--replica-id", replicaId, .. extra ?? []], AuditFixture.Environment);

    private static async Task StopAsync(ProxyProcess proxy)
    {
        proxy.Signal(15);
        await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60));
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

    private static async Task PostgresAsync(PostgresServer pg, string sql, int rows)
    {
        await using var connection = new NpgsqlConnection(pg.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var changed = await command.ExecuteNonQueryAsync();
        if (rows >= 0)
        {
            Assert.Equal(rows, changed);
        }
        else
        {
            Assert.True(changed > 0, $"no row changed by: {sql}");
        }
    }
}
