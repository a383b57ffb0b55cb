namespace ProxyGuard.Audit.Storage;

/// <summary>One stored event row as written: its local id, its columns and its chain hash (null for events older than the chain).</summary>
internal sealed record StoredEvent(long Id, PreparedEvent Event, byte[]? Hash);
