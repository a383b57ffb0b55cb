namespace ProxyGuard.Engine.Budgets;

/// <summary>
/// The usage of one budget limit for one key (e.g. requests of <c>slow-drip</c> for <c>client=a host=h</c>) over a
/// sliding window kept as <see cref="Slots"/> + 1 slots of <c>window / Slots</c> each. Slot numbers are wall-clock
/// based (Unix milliseconds / slot width) so that every replica numbers them alike. The sum over the current slot
/// and the <see cref="Slots"/> before it covers at least the last window (at most one slot more): the meter never
/// admits more than the limit in any window, and may refuse for at most one slot width longer than the window.
/// With a shared store, each slot also holds the units this replica was granted by the store for that slot (its
/// lease) and what the store holds for this replica (its claim): a replica admits within its lease only.
/// Not thread-safe: the ledger locks the meter.
/// </summary>
internal sealed class BudgetMeter
{
    public const int Slots = 20;

    // The window's slots plus one ahead (a lease taken before the next slot starts).
    private const int Ring = Slots + 2;

    private readonly long[] _slotIds = new long[Ring];
    private readonly long[] _own = new long[Ring];
    private readonly long[] _granted = new long[Ring];
    private readonly long[] _central = new long[Ring];
    private readonly long[] _remoteIds = new long[Ring];
    private readonly long[] _remote = new long[Ring];

    public BudgetMeter(string meterId, string key, long slotMs)
    {
        MeterId = meterId;
        Key = key;
        SlotMs = slotMs;
        Array.Fill(_slotIds, long.MinValue);
        Array.Fill(_remoteIds, long.MinValue);
    }

    public string MeterId { get; }

    public string Key { get; }

    /// <summary>The client whose request created the meter: it counts in that client's share of the ledger's keys (null: none).</summary>
    public string? Owner { get; init; }

    public long SlotMs { get; }

    /// <summary>Set under the meter's lock when the ledger evicts it: a charger that finds it dead looks the key up again.</summary>
    public bool Dead { get; set; }

    /// <summary>The limit's amount as last charged (the store grants against it).</summary>
    public long Limit { get; set; }

    /// <summary>When a request last needed this meter (Unix ms): the shared store's sync keeps a lease ready for active meters.</summary>
    public long LastDemandMs { get; set; }

    /// <summary>
    /// The latest slot for which the store granted less than asked (it had nothing more left then): this slot and any
    /// earlier one are refused without asking again until a later grant succeeds. An earlier slot's window holds every
    /// claim a later slot's does (the store sums claims from the window's first slot on), so it had no room either.
    /// </summary>
    public long ShortSlot { get; set; } = long.MinValue;

    public long SlotOf(long nowMs) => Math.DivRem(nowMs, SlotMs, out var rem) - (rem < 0 ? 1 : 0);

    /// <summary>This replica's usage in the window ending at <paramref name="slot"/>.</summary>
    public long Own(long slot) => Sum(_slotIds, _own, slot);

    /// <summary>The other replicas' usage (claims) in the window, as last read from the shared store.</summary>
    public long Remote(long slot) => Sum(_remoteIds, _remote, slot);

    /// <summary>What this replica's lease for <paramref name="slot"/> still allows.</summary>
    public long Available(long slot)
    {
        var i = Index(slot);
        return _slotIds[i] == slot ? Math.Max(0, _granted[i] - _own[i]) : 0;
    }

    /// <summary>The units granted for <paramref name="slot"/> (0 when none).</summary>
    public long Granted(long slot)
    {
        var i = Index(slot);
        return _slotIds[i] == slot ? _granted[i] : 0;
    }

    /// <summary>What the store holds for this replica in <paramref name="slot"/>, as far as this replica knows (0 when none).</summary>
    public long Central(long slot)
    {
        var i = Index(slot);
        return _slotIds[i] == slot ? _central[i] : 0;
    }

    public void Add(long slot, long amount)
    {
        _own[Touch(slot)] += amount;
    }

    /// <summary>
    /// True when nothing in the window ending at <paramref name="slot"/> (or ahead of it) is counted, leased or held
    /// in the store for this replica: dropping the meter loses nothing.
    /// </summary>
    public bool Idle(long slot)
    {
        for (var i = 0; i < Ring; i++)
        {
            if (InWindowOrAhead(_slotIds[i], slot) && (_own[i] != 0 || _granted[i] != 0 || _central[i] != 0))
            {
                return false;
            }

            if (InWindow(_remoteIds[i], slot) && _remote[i] != 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The claims the store should hold for this replica where they differ from what it holds: for the current and
    /// later slots the larger of the lease and the usage, for past slots the usage (an unused lease goes back).
    /// <paramref name="returnAll"/> (shutting down): the usage everywhere.
    /// </summary>
    public void TakeClaims(long slot, bool returnAll, List<(long Slot, long Amount)> into)
    {
        for (var i = 0; i < Ring; i++)
        {
            if (!InWindowOrAhead(_slotIds[i], slot))
            {
                continue;
            }

            var desired = _slotIds[i] < slot || returnAll ? _own[i] : Math.Max(_own[i], _granted[i]);
            if (desired != _central[i])
            {
                into.Add((_slotIds[i], desired));
            }
        }
    }

    /// <summary>The store now holds <paramref name="amount"/> for this replica in <paramref name="slot"/> (a claim written).</summary>
    public void Stored(long slot, long amount)
    {
        var i = Index(slot);
        if (_slotIds[i] == slot)
        {
            _central[i] = amount;
            _granted[i] = Math.Min(_granted[i], amount); // a returned lease is gone
        }
    }

    /// <summary>The store granted up to <paramref name="total"/> units for <paramref name="slot"/> (its row for this replica now holds that).</summary>
    public void Grant(long slot, long total)
    {
        var i = Touch(slot);
        _granted[i] = total;
        _central[i] = total;
    }

    /// <summary>Replaces the other replicas' usage with what the shared store holds (slots absent there are zero).</summary>
    public void SetRemote(long slot, IReadOnlyList<(long Slot, long Amount)>? rows)
    {
        Array.Fill(_remoteIds, long.MinValue);
        Array.Clear(_remote);
        if (rows is null)
        {
            return;
        }

        foreach (var (s, amount) in rows)
        {
            if (InWindow(s, slot))
            {
                var i = Index(s);
                _remoteIds[i] = s;
                _remote[i] = amount;
            }
        }
    }

    private int Touch(long slot)
    {
        var i = Index(slot);
        if (_slotIds[i] != slot)
        {
            _slotIds[i] = slot;
            _own[i] = 0;
            _granted[i] = 0;
            _central[i] = 0;
        }

        return i;
    }

    private static bool InWindow(long id, long slot) => id != long.MinValue && id <= slot && id >= slot - Slots;

    private static bool InWindowOrAhead(long id, long slot) => id != long.MinValue && id >= slot - Slots;

    private static int Index(long slot) => (int)(((slot % Ring) + Ring) % Ring);

    private static long Sum(long[] ids, long[] values, long slot)
    {
        long sum = 0;
        for (var i = 0; i < Ring; i++)
        {
            if (InWindow(ids[i], slot))
            {
                sum += values[i];
            }
        }

        return sum;
    }
}
