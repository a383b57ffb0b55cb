namespace ProxyGuard.Audit;

/// <summary>
/// A queue slot taken before a request is forwarded (<see cref="EventStore.TryReserve"/>): writing the request's event
/// through it cannot fail for lack of room. Disposing it unused gives the slot back. Use once.
/// </summary>
public sealed class EventReservation : IDisposable
{
    private EventStore? _store;

    internal EventReservation(EventStore store)
    {
        _store = store;
    }

    /// <summary>Enqueues the event in the reserved slot.</summary>
    public void Write(AuditEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        var store = Interlocked.Exchange(ref _store, null) ?? throw new InvalidOperationException("the reservation was already used");
        store.WriteReserved(e);
    }

    public void Dispose() => Interlocked.Exchange(ref _store, null)?.ReleaseReserved();
}
