using ProxyGuard.Engine.Budgets;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Tests.Budgets;

/// <summary>
/// R5-3: the ledger's key table is bounded process-wide, and one client may hold only a share of it (half of what the
/// other clients leave free), so that a client making up keys cannot lock the other clients out.
/// </summary>
public sealed class BudgetKeyShareTests
{
    private static readonly BudgetSpec s_perHost = new()
    {
        Name = "per-host",
        Hosts = [],
        HostMatcher = HostMatcher.Any,
        Clients = [],
        Per = ["client", "host"],
        Limits = [new BudgetLimit(BudgetQuantity.Requests, 1000, TimeSpan.FromMinutes(1))],
    };

    private static BudgetCharge Charge(BudgetLedger ledger, string client, string host) =>
        ledger.Charge([(s_perHost, $"client={client} host={host}")], 0, client: client);

    [Fact]
    public void One_client_making_up_keys_is_refused_past_its_share_and_other_clients_still_get_keys()
    {
        long now = 1_000_000_000;
        var ledger = new BudgetLedger(20, () => now);

        // The attacker makes up names until refused: it gets half of the table, then its own new keys are refused.
        var admitted = 0;
        BudgetCharge refused = default;
        for (var i = 0; i < 25; i++)
        {
            var charge = Charge(ledger, "attacker", $"h{i}.example.test");
            if (charge.Outcome == BudgetOutcome.Admitted)
            {
                admitted++;
            }
            else
            {
                refused = charge;
            }
        }

        Assert.Equal(10, admitted);
        Assert.Equal(10, ledger.HeldBy("attacker"));
        Assert.Equal(BudgetOutcome.Full, refused.Outcome);
        Assert.True(refused.OverShare);
        Assert.Equal(15, ledger.FullRefusals);

        // Its keys it already holds keep working.
        Assert.Equal(BudgetOutcome.Admitted, Charge(ledger, "attacker", "h0.example.test").Outcome);

        // Other clients still get keys; a second greedy client gets half of what is left, and a third still fits.
        Assert.Equal(BudgetOutcome.Admitted, Charge(ledger, "victim", "api.example.test").Outcome);
        var second = 0;
        for (var i = 0; i < 10; i++)
        {
            second += Charge(ledger, "second", $"s{i}.example.test").Outcome == BudgetOutcome.Admitted ? 1 : 0;
        }

        Assert.Equal(4, second); // (20 - 11) / 2
        Assert.Equal(BudgetOutcome.Admitted, Charge(ledger, "third", "api.example.test").Outcome);
        Assert.True(ledger.Count <= ledger.MaxKeys);

        // Once the window has passed, the attacker's idle keys are evicted and its share is free again.
        now += 64_000;
        Assert.Equal(BudgetOutcome.Admitted, Charge(ledger, "attacker", "later.example.test").Outcome);
        Assert.Equal(1, ledger.HeldBy("attacker"));
        Assert.Equal(0, ledger.HeldBy("second"));
    }

    [Fact]
    public async Task Concurrent_new_keys_of_one_client_never_exceed_its_share()
    {
        var ledger = new BudgetLedger(100);
        using var start = new ManualResetEventSlim();
        var admitted = 0;
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            start.Wait();
            for (var i = 0; i < 50; i++)
            {
                if (Charge(ledger, "attacker", $"w{w}-{i}.example.test").Outcome == BudgetOutcome.Admitted)
                {
                    Interlocked.Increment(ref admitted);
                }
            }
        })).ToArray();
        start.Set();
        await Task.WhenAll(workers);

        Assert.Equal(50, admitted);
        Assert.Equal(50, ledger.HeldBy("attacker"));
        Assert.Equal(50, ledger.Count);
        Assert.Equal(BudgetOutcome.Admitted, Charge(ledger, "victim", "api.example.test").Outcome);
    }
}
