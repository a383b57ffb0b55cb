namespace ProxyGuard.Audit.Central;

/// <summary>
/// The central store's registration of this replica id does not belong to this data directory (another incarnation,
/// or a shipped cursor beyond the local store): nothing is shipped or marked shipped. The message is one line.
/// </summary>
public sealed class ReplicaConflictException : Exception
{
    public ReplicaConflictException(string message)
        : base(message)
    {
    }

    public ReplicaConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
