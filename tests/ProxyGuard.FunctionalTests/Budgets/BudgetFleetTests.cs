using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;

namespace ProxyGuard.FunctionalTests.Budgets;

/// <summary>
/// Issue 17: a budget of N requests per minute per client x host holds across three replicas sharing one PostgreSQL
/// (within the tolerance docs/policy.md states), and while PostgreSQL is down each replica admits only its share.
/// </summary>
[Collection("proxy")]
public sealed class BudgetFleetTests : IClassFixture<PolicyOrigin>
{
    private const int SyncMs = 100;
    private const int Limit = 30;

    private const string Body = """
        rules:
          - name: warm
            hosts: [localhost]
            ports: [{HTTPS}]
            paths: ["/warm/**"]
            action: allow
          - name: origin
            hosts: [localhost, 127.0.0.1]
            ports: [{HTTPS}, {HTTP}]
            action: allow
        budgets:
          - name: fleet
            match: {hosts: [localhost], rule: origin}
            requests: 30/1m
          - name: outage
            match: {hosts: [127.0.0.1]}
            requests: 30/1m
        """;

    private readonly PolicyOrigin _o;

    public BudgetFleetTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [RequiresPostgresFact]
    public async Task Three_replicas_hold_one_budget_within_the_stated_tolerance_and_fall_back_to_their_share_while_postgres_is_down()
    {
        await using var postgres = await PostgresServer.StartAsync();
        using var dir = new TempDir();
        var environment = new Dictionary<string, string> { ["PROXYGUARD_BUDGET_SYNC_MS"] = SyncMs.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var proxies = new List<ProxyProcess>();
        var clients = new List<HttpClient>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var proxy = await ProxyProcess.StartAsync(dir.File($"replica-{i}"), _o.Policy(Body), ["--budget-store", postgres.Url], environment);
                proxies.Add(proxy);
                clients.Add(ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath));
            }

            // Warm up each replica (TLS, certificate, JIT) with requests no budget counts, and let every replica see the
            // others' heartbeats (R = 3).
            foreach (var client in clients)
            {
                using var warm = await client.GetAsync(_o.HttpsUrl("/warm/up"));
                Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
            }

            await Task.Delay(4 * SyncMs);

            // One client (one source address: one key) sends 60 requests round-robin over the replicas, at most 5 per
            // second (200 ms between a response and the next request), so each replica gets at most one per 600 ms.
            // Tolerance (docs/policy.md): N + (R - 1) * a, a = what one replica admits within 2*I + 2*d, here at most 2
            // for any sync period I + d up to 0.5 s: at most 30 + 2 * 2 = 34.
            var admitted = new int[3];
            var refused = new int[3];
            for (var n = 0; n < 60; n++)
            {
                await Task.Delay(200);
                var replica = n % 3;
                using var response = await clients[replica].GetAsync(_o.HttpsUrl($"/echo/fleet-{n}"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    admitted[replica]++;
                }
                else
                {
                    Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
                    Assert.Equal("budget-exceeded", string.Join(",", response.Headers.GetValues("X-ProxyGuard-Reason")));
                    refused[replica]++;
                }
            }

            var total = admitted.Sum();
            Assert.True(total >= Limit && total <= Limit + 4,
                $"admitted {total} (per replica {string.Join("/", admitted)}) of a budget of {Limit} across 3 replicas; tolerance {Limit + 4}");
            Assert.All(refused, r => Assert.True(r > 0, $"every replica refused once the fleet had used the budget: {string.Join("/", refused)}"));

            // PostgreSQL stops: after max(1 s, 3 x sync) without a sync each replica admits at most 30 / 3 = 10 by itself.
            await postgres.StopAsync();
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            for (var replica = 0; replica < 3; replica++)
            {
                var ok = 0;
                for (var n = 0; n < 15; n++)
                {
                    using var response = await clients[replica].GetAsync(_o.HttpsUrl($"/echo/outage-{replica}-{n}", "127.0.0.1"));
                    ok += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
                }

                Assert.True(ok == Limit / 3, $"replica {replica} admitted {ok} while PostgreSQL was down; its share is {Limit / 3}");
            }

            // The replicas kept serving what is not budgeted-out, and said why.
            Assert.Contains(proxies, p => p.Output.Contains("budget store unreachable", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }

            foreach (var proxy in proxies)
            {
                await proxy.DisposeAsync();
            }
        }
    }
}
