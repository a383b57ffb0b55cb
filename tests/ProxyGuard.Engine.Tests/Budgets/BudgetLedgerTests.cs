using ProxyGuard.Engine.Budgets;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Tests.Budgets;

/// <summary>The in-memory ledger: exact sliding windows on one proxy, atomic checks under concurrency, bounded keys.</summary>
public sealed class BudgetLedgerTests
{
    private static BudgetSpec Budget(string name, params BudgetLimit[] limits) => new()
    {
        Name = name,
        Hosts = [],
        HostMatcher = HostMatcher.Any,
        Clients = [],
        Per = ["client", "host"],
        Limits = limits,
    };

    private static readonly BudgetSpec s_tenPerMinute = Budget("ten", new BudgetLimit(BudgetQuantity.Requests, 10, TimeSpan.FromMinutes(1)));

    [Fact]
    public void No_interval_of_one_window_ever_holds_more_than_the_limit_and_usage_frees_as_the_window_moves()
    {
        long now = 1_000_000_000;
        var ledger = new BudgetLedger(1000, () => now);
        var admitted = new List<long>();
        var rng = new Random(7);
        for (var i = 0; i < 5000; i++)
        {
            now += rng.Next(0, 1500); // irregular arrivals, ~0.75 s apart on average: about 80 per minute offered
            if (ledger.Charge([(s_tenPerMinute, "k")], 0).Outcome == BudgetOutcome.Admitted)
            {
                admitted.Add(now);
            }
        }

        // Exact bound: in every interval of one window (60 s) at most 10 were admitted.
        for (int i = 0, j = 0; i < admitted.Count; i++)
        {
            while (admitted[i] - admitted[j] >= 60_000)
            {
                j++;
            }

            Assert.True(i - j + 1 <= 10, $"{i - j + 1} admitted within 60 s ending at {admitted[i]}");
        }

        // And it is not much stricter than exact: over ~62 minutes, close to 10 per 63 s (window + one 3 s slot).
        var minutes = (admitted[^1] - admitted[0]) / 60_000.0;
        Assert.True(admitted.Count >= minutes * 10 * 60 / 63 - 10, $"{admitted.Count} admitted over {minutes:F1} minutes");
    }

    [Fact]
    public void Keys_are_counted_separately_and_a_refused_request_counts_in_no_budget()
    {
        long now = 1_000_000_000;
        var ledger = new BudgetLedger(1000, () => now);
        var bytes = Budget("bytes", new BudgetLimit(BudgetQuantity.UploadBytes, 1000, TimeSpan.FromHours(1)));
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_tenPerMinute, "a"), (bytes, "a")], 50).Outcome);
        }

        var refused = ledger.Charge([(bytes, "a"), (s_tenPerMinute, "a")], 50);
        Assert.Equal(BudgetOutcome.Exceeded, refused.Outcome);
        Assert.Equal("ten", refused.Budget!.Name);
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_tenPerMinute, "b")], 0).Outcome); // another key

        // The refused request's 50 bytes were not counted: 500 used, 500 left.
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(bytes, "a")], 500).Outcome);
        var over = ledger.Charge([(bytes, "a")], 1);
        Assert.Equal((BudgetOutcome.Exceeded, "bytes"), (over.Outcome, over.Budget!.Name));
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(bytes, "a")], 0).Outcome); // no body: the byte limit alone does not refuse

        // Audit mode counts an exceeded request anyway (it is forwarded): "a" now holds 11 of 10.
        Assert.Equal(BudgetOutcome.Exceeded, ledger.Charge([(s_tenPerMinute, "a")], 0, countAnyway: true).Outcome);
        now += 57_000; // the first 10 are still in the window (plus one slot)
        Assert.Equal(BudgetOutcome.Exceeded, ledger.Charge([(s_tenPerMinute, "a")], 0).Outcome);
    }

    [Fact]
    public async Task Concurrent_requests_never_take_more_than_the_limit()
    {
        var ledger = new BudgetLedger(1000);
        var budget = Budget("burst", new BudgetLimit(BudgetQuantity.Requests, 100, TimeSpan.FromMinutes(10)),
            new BudgetLimit(BudgetQuantity.UploadBytes, 150_000, TimeSpan.FromMinutes(10)));
        var admitted = 0;
        using var start = new ManualResetEventSlim();
        var workers = Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            start.Wait();
            for (var i = 0; i < 200; i++)
            {
                if (ledger.Charge([(budget, "k")], 1000).Outcome == BudgetOutcome.Admitted)
                {
                    Interlocked.Increment(ref admitted);
                }
            }
        })).ToArray();
        start.Set();
        await Task.WhenAll(workers);
        Assert.Equal(100, admitted);
    }

    [Fact]
    public void The_key_table_is_bounded_idle_keys_make_room_and_a_full_table_of_busy_keys_refuses_new_ones()
    {
        long now = 1_000_000_000;
        var ledger = new BudgetLedger(4, () => now);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_tenPerMinute, $"k{i}")], 0).Outcome);
        }

        // Full of busy keys: a new key is refused (fail closed), known keys still work.
        var full = ledger.Charge([(s_tenPerMinute, "new")], 0);
        Assert.Equal(BudgetOutcome.Full, full.Outcome);
        Assert.Equal(1, ledger.FullRefusals);
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_tenPerMinute, "k0")], 0).Outcome);
        Assert.Equal(4, ledger.Count);

        // Once their window has passed the keys are idle: evicted without losing anything, and the new key fits.
        now += 64_000;
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_tenPerMinute, "new")], 0).Outcome);
        Assert.True(ledger.Count <= 4);
    }

    [Fact]
    public void Without_an_answer_from_the_shared_store_a_replica_admits_only_its_share()
    {
        long now = 1_000_000_000;
        var ledger = new BudgetLedger(100, () => now) { Replicas = 3 };
        var thirty = Budget("thirty", new BudgetLimit(BudgetQuantity.Requests, 30, TimeSpan.FromMinutes(1)));
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(thirty, "fresh")], 0).Outcome); // no store: up to N
        }

        // No answer: at most 30 / 3 = 10 by itself, and 12 are already used.
        Assert.Equal(BudgetOutcome.Exceeded, ledger.Charge([(thirty, "fresh")], 0, pass: BudgetPass.Fallback).Outcome);
        var admitted = 0;
        for (var i = 0; i < 30; i++)
        {
            admitted += ledger.Charge([(thirty, "other")], 0, pass: BudgetPass.Fallback).Outcome == BudgetOutcome.Admitted ? 1 : 0;
        }

        Assert.Equal(10, admitted);
    }

    [Fact]
    public void A_meter_admits_within_its_lease_and_gives_back_what_it_did_not_use_once_the_slot_is_past()
    {
        var meter = new BudgetMeter("m", "k", 3000);
        var claims = new List<(long Slot, long Amount)>();
        meter.Grant(100, 5);
        Assert.Equal(5, meter.Available(100));
        meter.Add(100, 2);
        Assert.Equal(3, meter.Available(100));
        meter.TakeClaims(100, returnAll: false, claims);
        Assert.Empty(claims); // the store already holds the lease of 5
        Assert.False(meter.Idle(100));

        meter.TakeClaims(101, returnAll: false, claims); // the slot is past: the 3 unused units go back
        Assert.Equal([(100L, 2L)], claims);
        meter.Stored(100, 2);
        Assert.Equal(0, meter.Available(100));

        claims.Clear();
        meter.Add(101, 4); // over the lease (audit mode, or a streamed body): the claim grows to the usage
        meter.TakeClaims(101, returnAll: false, claims);
        Assert.Equal([(101L, 4L)], claims);
    }
}
