using System.Collections.Concurrent;

namespace ProxyGuard.Engine.Runtime;

/// <summary>Counts open connections per client key to enforce <see cref="ProxyLimits.MaxConnectionsPerClient"/>.</summary>
internal sealed class ConnectionCounter
{
    private readonly ConcurrentDictionary<string, StrongBox> _counts = new(StringComparer.Ordinal);
    private readonly int _limit;

    public ConnectionCounter(int limit)
    {
        _limit = limit;
    }

    /// <summary>Takes a slot; returns null (and takes nothing) when the client is at its limit.</summary>
    public IDisposable? TryAcquire(string key)
    {
        var box = _counts.GetOrAdd(key, _ => new StrongBox());
        if (Interlocked.Increment(ref box.Value) > _limit)
        {
            Release(key, box);
            return null;
        }

        return new Slot(this, key, box);
    }

    private void Release(string key, StrongBox box)
    {
        if (Interlocked.Decrement(ref box.Value) == 0)
        {
            _counts.TryRemove(new KeyValuePair<string, StrongBox>(key, box));
        }
    }

    private sealed class StrongBox
    {
        public int Value;
    }

    private sealed class Slot(ConnectionCounter owner, string key, StrongBox box) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(key, box);
            }
        }
    }
}
