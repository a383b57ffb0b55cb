using System.Collections.Concurrent;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Budgets;

/// <summary>What <see cref="BudgetLedger.Charge"/> concluded.</summary>
internal enum BudgetOutcome
{
    /// <summary>Within every limit: counted.</summary>
    Admitted,

    /// <summary>A limit is spent (<see cref="BudgetCharge.Limit"/>): nothing counted, unless <c>countAnyway</c> (audit mode).</summary>
    Exceeded,

    /// <summary>The ledger holds as many keys as it may and none is idle: refused (fail closed), nothing counted.</summary>
    Full,
}

internal readonly record struct BudgetCharge(BudgetOutcome Outcome, BudgetSpec? Budget = null, BudgetLimit? Limit = null, string? Key = null);

/// <summary>
/// The process's usage of the policy's budgets: one <see cref="BudgetMeter"/> per budget limit and key, at most
/// <see cref="MaxKeys"/> of them. A meter with nothing in its window is idle and may be evicted without losing
/// anything; when every meter is busy a new key is refused (<see cref="BudgetOutcome.Full"/>). Meters outlive policy
/// reloads: a limit keeps its usage while its budget name, quantity and window stay the same.
/// With a shared store (<see cref="BudgetSync"/>) the check also counts the other replicas' usage as last read,
/// and while the store is unreachable each replica admits at most its share (limit / replicas) by itself.
/// </summary>
internal sealed class BudgetLedger
{
    private readonly ConcurrentDictionary<(string Meter, string Key), BudgetMeter> _meters = new();
    private readonly Func<long> _nowMs;
    private readonly object _sweepLock = new();
    private long _lastSweepMs;
    private long _fullRefusals;

    public BudgetLedger(int maxKeys, Func<long>? nowMs = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxKeys);
        MaxKeys = maxKeys;
        _nowMs = nowMs ?? (() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    public int MaxKeys { get; }

    public int Count => _meters.Count;

    public long FullRefusals => Interlocked.Read(ref _fullRefusals);

    /// <summary>
    /// Set by the shared store's sync after each success (Unix ms): past it, the other replicas' usage is stale and
    /// each replica admits by itself at most <c>limit / <see cref="Replicas"/></c> (the replicas it last saw).
    /// 0: no shared store.
    /// </summary>
    public long SharedUntilMs { get; set; }

    /// <summary>Replicas seen at the last successful sync (this one included).</summary>
    public int Replicas { get; set; } = 1;

    /// <summary>The divisor of the local share now: 0 while the shared view is fresh (or there is no store).</summary>
    public int LocalShareDivisor(long nowMs)
    {
        var until = SharedUntilMs;
        return until != 0 && nowMs > until ? Math.Max(1, Replicas) : 0;
    }

    public long NowMs => _nowMs();

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<BudgetLimit, string> s_meterIds = [];

    /// <summary>The shared id of a budget limit (name, quantity, window): usage carries over reloads that keep it.</summary>
    public static string MeterId(BudgetSpec budget, BudgetLimit limit)
    {
        if (s_meterIds.TryGetValue(limit, out var id))
        {
            return id;
        }

        id = $"{budget.Name}/{(limit.Quantity == BudgetQuantity.Requests ? "requests" : "upload_bytes")}/{(long)limit.Window.TotalMilliseconds}";
        s_meterIds.AddOrUpdate(limit, id);
        return id;
    }

    /// <summary>
    /// Checks every limit of every budget in <paramref name="budgets"/> (with its key) and counts one request and
    /// <paramref name="uploadBytes"/> in all of them at once, or in none: the meters are locked together (in one
    /// order), so concurrent requests cannot both take the last unit. <paramref name="countAnyway"/> (audit mode)
    /// counts an exceeded request too, since it is forwarded. <paramref name="streamed"/>: the request has a body whose
    /// size is not known yet (counted when it ends, or a WebSocket); it still needs room (at least one byte) in every
    /// upload limit, so that a spent upload budget refuses it.
    /// </summary>
    public BudgetCharge Charge(IReadOnlyList<(BudgetSpec Budget, string Key)> budgets, long uploadBytes, bool countAnyway = false, bool streamed = false)
    {
        while (true)
        {
            var entries = new List<(BudgetMeter Meter, BudgetSpec Budget, BudgetLimit Limit, string Key)>();
            foreach (var (budget, key) in budgets)
            {
                foreach (var limit in budget.Limits)
                {
                    var meter = GetOrCreate(MeterId(budget, limit), key, limit);
                    if (meter is null)
                    {
                        Interlocked.Increment(ref _fullRefusals);
                        return new BudgetCharge(BudgetOutcome.Full, budget, limit, key);
                    }

                    entries.Add((meter, budget, limit, key));
                }
            }

            entries.Sort(static (a, b) =>
            {
                var c = string.CompareOrdinal(a.Meter.MeterId, b.Meter.MeterId);
                return c != 0 ? c : string.CompareOrdinal(a.Meter.Key, b.Meter.Key);
            });
            var locked = 0;
            try
            {
                var retry = false;
                foreach (var e in entries)
                {
                    Monitor.Enter(e.Meter);
                    locked++;
                    retry |= e.Meter.Dead;
                }

                if (retry)
                {
                    continue; // evicted between the lookup and the lock: look up again
                }

                var now = _nowMs();
                var share = LocalShareDivisor(now);
                BudgetCharge? exceeded = null;
                foreach (var e in entries)
                {
                    var slot = e.Meter.SlotOf(now);
                    var cost = e.Limit.Quantity == BudgetQuantity.Requests ? 1 : streamed ? Math.Max(1, uploadBytes) : uploadBytes;
                    var own = e.Meter.Own(slot);
                    var over = own + e.Meter.Remote(slot) + cost > e.Limit.Amount
                        || (share > 0 && own + cost > e.Limit.Amount / share);
                    if (over && cost > 0)
                    {
                        exceeded = new BudgetCharge(BudgetOutcome.Exceeded, e.Budget, e.Limit, e.Key);
                        break;
                    }
                }

                if (exceeded is null || countAnyway)
                {
                    foreach (var e in entries)
                    {
                        var cost = e.Limit.Quantity == BudgetQuantity.Requests ? 1 : uploadBytes;
                        if (cost > 0)
                        {
                            e.Meter.Add(e.Meter.SlotOf(now), cost);
                        }
                    }
                }

                return exceeded ?? new BudgetCharge(BudgetOutcome.Admitted);
            }
            finally
            {
                for (var i = 0; i < locked; i++)
                {
                    Monitor.Exit(entries[i].Meter);
                }
            }
        }
    }

    /// <summary>Counts bytes learned after the request (a streamed body without a length): never refuses, may go over.</summary>
    public void ChargeAfter(IReadOnlyList<(BudgetSpec Budget, string Key)> budgets, long uploadBytes)
    {
        if (uploadBytes <= 0)
        {
            return;
        }

        foreach (var (budget, key) in budgets)
        {
            foreach (var limit in budget.Limits)
            {
                if (limit.Quantity != BudgetQuantity.UploadBytes)
                {
                    continue;
                }

                while (GetOrCreate(MeterId(budget, limit), key, limit) is { } meter)
                {
                    lock (meter)
                    {
                        if (meter.Dead)
                        {
                            continue;
                        }

                        meter.Add(meter.SlotOf(_nowMs()), uploadBytes);
                        break;
                    }
                }
            }
        }
    }

    /// <summary>The meters (for the shared store's sync).</summary>
    public ICollection<BudgetMeter> Meters => _meters.Values;

    /// <summary>Removes every idle meter (nothing in its window, nothing to flush). Returns how many.</summary>
    public int Sweep()
    {
        var now = _nowMs();
        var removed = 0;
        foreach (var (id, meter) in _meters)
        {
            lock (meter)
            {
                if (meter.Idle(meter.SlotOf(now)))
                {
                    meter.Dead = true;
                    _meters.TryRemove(id, out _);
                    removed++;
                }
            }
        }

        Volatile.Write(ref _lastSweepMs, now);
        return removed;
    }

    private BudgetMeter? GetOrCreate(string meterId, string key, BudgetLimit limit)
    {
        if (_meters.TryGetValue((meterId, key), out var existing))
        {
            return existing;
        }

        if (_meters.Count >= MaxKeys)
        {
            // Full: sweep idle meters, at most once per 250 ms so that a full ledger of busy keys costs no scan per request.
            lock (_sweepLock)
            {
                if (_meters.Count >= MaxKeys && _nowMs() - Volatile.Read(ref _lastSweepMs) >= 250)
                {
                    Sweep();
                }

                if (_meters.Count >= MaxKeys)
                {
                    return _meters.TryGetValue((meterId, key), out existing) ? existing : null;
                }
            }
        }

        var slotMs = Math.Max(1, (long)limit.Window.TotalMilliseconds / BudgetMeter.Slots);
        return _meters.GetOrAdd((meterId, key), static (k, s) => new BudgetMeter(k.Meter, k.Key, s), slotMs);
    }
}
