namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// A process-wide count of bytes held for one purpose (e.g. buffered WebSocket messages), bounded by a cap:
/// a reservation past the cap fails and the caller refuses the new work, never the process.
/// </summary>
internal sealed class ByteBudget(long capacity)
{
    private long _used;

    public long Capacity { get; } = capacity;

    /// <summary>Bytes reserved now.</summary>
    public long Used => Interlocked.Read(ref _used);

    /// <summary>Reserves <paramref name="bytes"/> if the cap allows it.</summary>
    public bool TryReserve(long bytes)
    {
        if (bytes <= 0)
        {
            return true;
        }

        while (true)
        {
            var used = Interlocked.Read(ref _used);
            if (used + bytes > Capacity)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _used, used + bytes, used) == used)
            {
                return true;
            }
        }
    }

    public void Release(long bytes)
    {
        if (bytes > 0)
        {
            Interlocked.Add(ref _used, -bytes);
        }
    }
}
