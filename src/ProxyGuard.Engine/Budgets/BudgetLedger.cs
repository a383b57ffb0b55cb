using System.Collections.Concurrent;
using System.Diagnostics;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Budgets;

/// <summary>What <see cref="BudgetLedger.Charge"/> concluded.</summary>
internal enum BudgetOutcome
{
    /// <summary>Within every limit: counted.</summary>
    Admitted,

    /// <summary>A limit is spent (<see cref="BudgetCharge.Limit"/>): nothing counted, unless <c>countAnyway</c> (audit mode).</summary>
    Exceeded,

    /// <summary>
    /// The ledger holds as many keys as it may and none is idle, or the client holds its share of them
    /// (<see cref="BudgetCharge.OverShare"/>): refused (fail closed), nothing counted.
    /// </summary>
    Full,

    /// <summary>With a shared store: a lease lacks units (<see cref="BudgetCharge.Needs"/>); nothing counted, ask the store and charge again.</summary>
    NeedLease,
}

/// <summary>How <see cref="BudgetLedger.Charge"/> decides with a shared store.</summary>
internal enum BudgetPass
{
    /// <summary>Within the leases; a lease that lacks units asks for more (<see cref="BudgetOutcome.NeedLease"/>).</summary>
    Leased,

    /// <summary>The store did not answer in time: this replica's share only (see <see cref="BudgetLedger"/>).</summary>
    Fallback,
}

internal readonly record struct BudgetCharge(
    BudgetOutcome Outcome, BudgetSpec? Budget = null, BudgetLimit? Limit = null, string? Key = null,
    IReadOnlyList<(BudgetMeter Meter, long Slot, long Amount)>? Needs = null, bool OverShare = false);

/// <summary>
/// The process's usage of the policy's budgets: one <see cref="BudgetMeter"/> per budget limit and key, at most
/// <see cref="MaxKeys"/> of them. A meter with nothing in its window is idle and may be evicted without losing
/// anything; when every meter is busy a new key is refused (<see cref="BudgetOutcome.Full"/>). Meters outlive policy
/// reloads: a limit keeps its usage while its budget name, quantity and window stay the same.
/// With a shared store (<see cref="BudgetSync"/>) a replica admits only within the units the store leased to it for
/// the current slot (the store grants a lease only while the whole fleet's claims in the window leave room, so the
/// fleet never admits more than the limit); when a lease lacks units the request waits for one store round trip.
/// While the store does not answer, each replica admits by itself at most its share (limit / replicas), also
/// respecting the other replicas' usage as last read.
/// A meter counts in the share of the client whose request created it. A client may create a new key only while it
/// holds at most half of the keys the other clients leave free (<see cref="ShareOf"/>), so that one client (or a few)
/// cannot fill the table and lock the others out: past its share its own new keys are refused, the others still fit.
/// </summary>
internal sealed class BudgetLedger
{
    private readonly ConcurrentDictionary<(string Meter, string Key), BudgetMeter> _meters = new();

    // Keys held per client (only clients that hold some: at most as many entries as meters).
    private readonly ConcurrentDictionary<string, int> _held = new(StringComparer.Ordinal);
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

    /// <summary>How many keys <paramref name="client"/> holds (its meters that are not evicted yet).</summary>
    public int HeldBy(string client) => _held.TryGetValue(client, out var n) ? n : 0;

    /// <summary>
    /// How many keys one client may hold while the others hold <paramref name="others"/>: half of what they leave free,
    /// at least one. One client alone gets half of the table; each further client half of what is still free.
    /// </summary>
    public int ShareOf(int others) => Math.Max(1, (MaxKeys - others) / 2);

    /// <summary>The shared store that leases units to this replica; null: budgets are this process's alone.</summary>
    public BudgetSync? Sync { get; set; }

    /// <summary>
    /// Set by the shared store's sync: true after a sync failed, false after one succeeded. While true, each replica
    /// admits by itself at most <c>limit / <see cref="Replicas"/></c> (the replicas it last saw).
    /// </summary>
    public bool StoreDown
    {
        get => Volatile.Read(ref _storeDown);
        set => Volatile.Write(ref _storeDown, value);
    }

    private bool _storeDown;

    /// <summary>Replicas seen at the last successful sync (this one included).</summary>
    public int Replicas { get; set; } = 1;

    /// <summary>How long a request waits for a lease before it is decided by this replica's share.</summary>
    public TimeSpan LeaseWait { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The divisor of the local share now: 0 while the shared store answers (or there is none).</summary>
    public int LocalShareDivisor() => Sync is not null && StoreDown ? Math.Max(1, Replicas) : 0;

    /// <summary>
    /// The lease a replica asks for at once for a limit of <paramref name="amount"/>: about one slot's share of an even
    /// spread over the window and the replicas (at least 1). A larger lease means fewer round trips and more units
    /// held by one replica while another runs short (returned when its slot ends).
    /// </summary>
    public static long LeaseSize(long amount, int replicas) => Math.Max(1, amount / ((long)BudgetMeter.Slots * Math.Max(1, replicas)));

    /// <summary>
    /// <see cref="Charge"/>, asking the shared store for a lease when one lacks units (one store round trip, at most
    /// <see cref="LeaseWait"/>; past it, this replica's share decides).
    /// </summary>
    public async ValueTask<BudgetCharge> ChargeAsync(IReadOnlyList<(BudgetSpec Budget, string Key)> budgets, long uploadBytes, bool countAnyway = false, bool streamed = false, string? client = null, bool bytesOnly = false)
    {
        var charge = Charge(budgets, uploadBytes, countAnyway, streamed: streamed, client: client, bytesOnly: bytesOnly);
        var deadline = Stopwatch.GetTimestamp() + (long)(LeaseWait.TotalSeconds * Stopwatch.Frequency);

        // The store either grants what is asked (charge again: admitted, unless concurrent requests took it first),
        // or grants less and marks the slot short (charge again: exceeded). A few rounds at most, within LeaseWait.
        for (var attempt = 0; attempt < 4 && charge.Outcome == BudgetOutcome.NeedLease; attempt++)
        {
            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (Sync is not { } sync || left <= TimeSpan.Zero || !await sync.LeaseAsync(charge.Needs!, left))
            {
                break;
            }

            charge = Charge(budgets, uploadBytes, countAnyway, streamed: streamed, client: client, bytesOnly: bytesOnly);
        }

        return charge.Outcome == BudgetOutcome.NeedLease ? Charge(budgets, uploadBytes, countAnyway, BudgetPass.Fallback, streamed, client, bytesOnly) : charge;
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
    /// upload limit, so that a spent upload budget refuses it. <paramref name="client"/>: whose share a new key counts
    /// in (null: no share, the table's bound only). <paramref name="bytesOnly"/>: only the upload-byte limits count
    /// (more bytes of a request already counted, while its body or WebSocket flows).
    /// </summary>
    public BudgetCharge Charge(IReadOnlyList<(BudgetSpec Budget, string Key)> budgets, long uploadBytes, bool countAnyway = false, BudgetPass pass = BudgetPass.Leased, bool streamed = false, string? client = null, bool bytesOnly = false)
    {
        while (true)
        {
            var entries = new List<(BudgetMeter Meter, BudgetSpec Budget, BudgetLimit Limit, string Key)>();
            foreach (var (budget, key) in budgets)
            {
                foreach (var limit in budget.Limits)
                {
                    var meter = GetOrCreate(MeterId(budget, limit), key, limit, client, out var overShare);
                    if (meter is null)
                    {
                        Interlocked.Increment(ref _fullRefusals);
                        return new BudgetCharge(BudgetOutcome.Full, budget, limit, key, OverShare: overShare);
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
                var leased = Sync is not null && !StoreDown && pass != BudgetPass.Fallback;
                var share = leased || (Sync is null && pass != BudgetPass.Fallback) ? 0 : Math.Max(1, Replicas);
                BudgetCharge? exceeded = null;
                List<(BudgetMeter Meter, long Slot, long Amount)>? needs = null;
                foreach (var e in entries)
                {
                    var slot = e.Meter.SlotOf(now);
                    var cost = e.Limit.Quantity == BudgetQuantity.Requests ? (bytesOnly ? 0 : 1) : streamed ? Math.Max(1, uploadBytes) : uploadBytes;
                    e.Meter.Limit = e.Limit.Amount;
                    e.Meter.LastDemandMs = now;
                    if (cost <= 0)
                    {
                        continue;
                    }

                    bool over;
                    if (leased)
                    {
                        // Within this replica's lease for the slot; otherwise ask the store (once), unless it said
                        // in this slot that nothing is left, or the request can never fit.
                        var available = e.Meter.Available(slot);
                        over = available < cost && (cost > e.Limit.Amount || e.Meter.ShortSlot >= slot);
                        if (!over && available < cost)
                        {
                            (needs ??= []).Add((e.Meter, slot, cost - available));
                        }
                    }
                    else
                    {
                        var own = e.Meter.Own(slot);
                        over = own + e.Meter.Remote(slot) + cost > e.Limit.Amount
                            || (share > 0 && own + cost > e.Limit.Amount / share);
                    }

                    if (over && exceeded is null)
                    {
                        exceeded = new BudgetCharge(BudgetOutcome.Exceeded, e.Budget, e.Limit, e.Key);
                    }
                }

                if (exceeded is null && needs is not null)
                {
                    return new BudgetCharge(BudgetOutcome.NeedLease, Needs: needs);
                }

                if (exceeded is null || countAnyway)
                {
                    foreach (var e in entries)
                    {
                        var cost = e.Limit.Quantity == BudgetQuantity.Requests ? (bytesOnly ? 0 : 1) : uploadBytes;
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
                    if (_meters.TryRemove(id, out _) && meter.Owner is { } owner)
                    {
                        Release(owner);
                    }

                    removed++;
                }
            }
        }

        Volatile.Write(ref _lastSweepMs, now);
        return removed;
    }

    private BudgetMeter? GetOrCreate(string meterId, string key, BudgetLimit limit, string? client, out bool overShare)
    {
        overShare = false;
        if (_meters.TryGetValue((meterId, key), out var existing))
        {
            return existing;
        }

        if (_meters.Count >= MaxKeys && !SweepIfDue(meterId, key, out existing))
        {
            return existing;
        }

        // Take a place in the client's share before the meter exists (so concurrent requests of one client cannot
        // all pass the check), and give it back if the key was added by someone else meanwhile. A client past its
        // share may have idle keys: sweep (when due) and look once more.
        if (client is not null && !TryHold(client) && (!SweepIfDue(meterId, key, out existing) || !TryHold(client)))
        {
            overShare = existing is null;
            return existing;
        }

        var slotMs = Math.Max(1, (long)limit.Window.TotalMilliseconds / BudgetMeter.Slots);
        var created = new BudgetMeter(meterId, key, slotMs) { Owner = client };
        if (_meters.TryAdd((meterId, key), created))
        {
            return created;
        }

        if (client is not null)
        {
            Release(client);
        }

        return _meters.TryGetValue((meterId, key), out existing) ? existing : GetOrCreate(meterId, key, limit, client, out overShare);
    }

    /// <summary>
    /// Sweeps idle meters, at most once per 250 ms so that a full ledger of busy keys costs no scan per request.
    /// False: the key exists by now (<paramref name="existing"/>), or the table is still full (null).
    /// </summary>
    private bool SweepIfDue(string meterId, string key, out BudgetMeter? existing)
    {
        lock (_sweepLock)
        {
            if (_nowMs() - Volatile.Read(ref _lastSweepMs) >= 250)
            {
                Sweep();
            }

            if (_meters.TryGetValue((meterId, key), out existing))
            {
                return false;
            }

            return _meters.Count < MaxKeys;
        }
    }

    /// <summary>Counts one more key for <paramref name="client"/> if it is within its share.</summary>
    private bool TryHold(string client)
    {
        while (true)
        {
            if (_held.TryGetValue(client, out var own))
            {
                if (own >= ShareOf(Math.Max(0, _meters.Count - own)))
                {
                    return false;
                }

                if (_held.TryUpdate(client, own + 1, own))
                {
                    return true;
                }
            }
            else if (_held.TryAdd(client, 1))
            {
                return true;
            }
        }
    }

    /// <summary>Counts one key fewer for <paramref name="client"/>; a client that holds none has no entry.</summary>
    private void Release(string client)
    {
        while (_held.TryGetValue(client, out var own))
        {
            if (own <= 1
                ? _held.TryRemove(new KeyValuePair<string, int>(client, own))
                : _held.TryUpdate(client, own - 1, own))
            {
                return;
            }
        }
    }
}
