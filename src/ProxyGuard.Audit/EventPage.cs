namespace ProxyGuard.Audit;

/// <summary>One page of events; <paramref name="Next"/> is the id of the last event returned, or the query's After when empty.</summary>
public sealed record EventPage(IReadOnlyList<AuditEvent> Events, long Next);
