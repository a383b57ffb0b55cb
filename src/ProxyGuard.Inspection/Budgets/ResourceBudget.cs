namespace ProxyGuard.Inspection.Budgets;

/// <summary>
/// A process-wide budget of one resource (bytes buffered, bytes decompressed, scans running). Work reserves what it
/// will use before it uses it and gets a <see cref="ResourceLease"/>; disposing the lease gives everything back, so a
/// release cannot be forgotten on any path (completion, abort, exception) as long as the lease is disposed.
/// Thread-safe; a reservation that would pass <see cref="Capacity"/> is refused and takes nothing.
/// </summary>
public sealed class ResourceBudget
{
    private long _inUse;
    private long _peak;
    private long _refusals;

    public ResourceBudget(string name, long capacity)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Name = name;
        Capacity = capacity;
    }

    /// <summary>A short name for logs, metrics and refusals (e.g. <c>buffered-bodies</c>).</summary>
    public string Name { get; }

    public long Capacity { get; }

    /// <summary>What the leases hold now.</summary>
    public long InUse => Volatile.Read(ref _inUse);

    /// <summary>Reservations refused since start.</summary>
    public long Refusals => Volatile.Read(ref _refusals);

    /// <summary>The most held at once since the last call (then starts again from what is held now).</summary>
    public long TakePeak() => Interlocked.Exchange(ref _peak, InUse);

    /// <summary>Reserves <paramref name="amount"/> (0 is allowed: a lease that can grow); null when it does not fit.</summary>
    public ResourceLease? TryReserve(long amount) => TryTake(amount) ? new ResourceLease(this, amount) : null;

    internal bool TryTake(long amount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(amount);
        if (amount == 0)
        {
            return true;
        }

        var current = Volatile.Read(ref _inUse);
        while (true)
        {
            if (amount > Capacity - current)
            {
                Interlocked.Increment(ref _refusals);
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _inUse, current + amount, current);
            if (seen == current)
            {
                var now = current + amount;
                var peak = Volatile.Read(ref _peak);
                while (now > peak)
                {
                    var before = Interlocked.CompareExchange(ref _peak, now, peak);
                    if (before == peak)
                    {
                        break;
                    }

                    peak = before;
                }

                return true;
            }

            current = seen;
        }
    }

    internal void Give(long amount)
    {
        if (amount > 0 && Interlocked.Add(ref _inUse, -amount) < 0)
        {
            throw new InvalidOperationException($"budget {Name} released more than it reserved");
        }
    }
}

/// <summary>
/// What one piece of work holds of a <see cref="ResourceBudget"/>. It can grow (another reservation that may be
/// refused) and shrink; <see cref="Dispose"/> returns all of it, once. Not meant to be used from two threads at once
/// except for <see cref="Dispose"/>, which is idempotent and thread-safe.
/// </summary>
public sealed class ResourceLease : IDisposable
{
    private readonly ResourceBudget _budget;
    private long _amount;
    private int _disposed;

    internal ResourceLease(ResourceBudget budget, long amount)
    {
        _budget = budget;
        _amount = amount;
    }

    public ResourceBudget Budget => _budget;

    /// <summary>What the lease holds now (0 after <see cref="Dispose"/>).</summary>
    public long Amount => Volatile.Read(ref _amount);

    /// <summary>Reserves <paramref name="more"/> on top; false (nothing taken) when the budget has no room or the lease was released.</summary>
    public bool TryGrow(long more)
    {
        if (Volatile.Read(ref _disposed) != 0 || !_budget.TryTake(more))
        {
            return false;
        }

        Interlocked.Add(ref _amount, more);
        if (Volatile.Read(ref _disposed) != 0)
        {
            // Released concurrently: give back what was just taken (Dispose already gave back the rest).
            ReleaseAll();
            return false;
        }

        return true;
    }

    /// <summary>Gives back up to <paramref name="less"/> of what the lease holds.</summary>
    public void Shrink(long less)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(less);
        while (true)
        {
            var current = Volatile.Read(ref _amount);
            var give = Math.Min(current, less);
            if (give == 0)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _amount, current - give, current) == current)
            {
                _budget.Give(give);
                return;
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            ReleaseAll();
        }
    }

    private void ReleaseAll() => _budget.Give(Interlocked.Exchange(ref _amount, 0));
}
