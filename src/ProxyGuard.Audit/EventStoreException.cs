namespace ProxyGuard.Audit;

/// <summary>The event store cannot accept or persist events; the message is a one-line reason.</summary>
public sealed class EventStoreException : Exception
{
    public EventStoreException(string message)
        : base(message)
    {
    }

    public EventStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
