namespace ProxyGuard.Engine.Network;

/// <summary>Raised in the upstream connect path when every address of a destination is refused.</summary>
internal sealed class DestinationBlockedException : Exception
{
    public DestinationBlockedException(string reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    public DestinationBlockedException()
    {
        Reason = "private-destination";
    }

    public DestinationBlockedException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = "private-destination";
    }

    /// <summary>The event reason: <c>private-destination</c>, <c>self</c> or <c>dns-failure</c>.</summary>
    public string Reason { get; }
}
