namespace ProxyGuard.Engine.Budgets;

/// <summary>
/// The usage of one budget limit for one key (e.g. requests of <c>slow-drip</c> for <c>client=a host=h</c>) over a
/// sliding window kept as <see cref="Slots"/> + 1 slots of <c>window / Slots</c> each. Slot numbers are wall-clock
/// based (Unix milliseconds / slot width) so that every replica numbers them alike. The sum over the current slot
/// and the <see cref="Slots"/> before it covers at least the last window (at most one slot more): the meter never
/// admits more than the limit in any window, and may refuse for at most one slot width longer than the window.
/// Not thread-safe: the ledger locks the meter.
/// </summary>
internal sealed class BudgetMeter
{
    public const int Slots = 20;
    private const int Ring = Slots + 1;

    private readonly long[] _slotIds = new long[Ring];
    private readonly long[] _own = new long[Ring];
    private readonly long[] _flushed = new long[Ring];
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

    public long SlotMs { get; }

    /// <summary>Set under the meter's lock when the ledger evicts it: a charger that finds it dead looks the key up again.</summary>
    public bool Dead { get; set; }

    public long SlotOf(long nowMs) => Math.DivRem(nowMs, SlotMs, out var rem) - (rem < 0 ? 1 : 0);

    /// <summary>This replica's usage in the window ending at <paramref name="slot"/>.</summary>
    public long Own(long slot) => Sum(_slotIds, _own, slot);

    /// <summary>The other replicas' usage in the window, as last read from the shared store.</summary>
    public long Remote(long slot) => Sum(_remoteIds, _remote, slot);

    public void Add(long slot, long amount)
    {
        var i = Index(slot);
        if (_slotIds[i] != slot)
        {
            _slotIds[i] = slot;
            _own[i] = 0;
            _flushed[i] = 0;
        }

        _own[i] += amount;
    }

    /// <summary>True when nothing in the window ending at <paramref name="slot"/> is counted and nothing is waiting to be flushed.</summary>
    public bool Idle(long slot)
    {
        for (var i = 0; i < Ring; i++)
        {
            if (InWindow(_slotIds[i], slot) && (_own[i] != 0 || _flushed[i] != _own[i]))
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

    /// <summary>The usage not yet sent to the shared store, per slot; marks it sent.</summary>
    public void TakeDeltas(long slot, List<(long Slot, long Amount)> into)
    {
        for (var i = 0; i < Ring; i++)
        {
            if (InWindow(_slotIds[i], slot) && _own[i] > _flushed[i])
            {
                into.Add((_slotIds[i], _own[i] - _flushed[i]));
                _flushed[i] = _own[i];
            }
        }
    }

    /// <summary>Gives back deltas a failed flush did not store, so the next flush sends them again.</summary>
    public void ReturnDelta(long slot, long amount)
    {
        var i = Index(slot);
        if (_slotIds[i] == slot)
        {
            _flushed[i] = Math.Max(0, _flushed[i] - amount);
        }
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

    private static bool InWindow(long id, long slot) => id != long.MinValue && id <= slot && id >= slot - Slots;

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
