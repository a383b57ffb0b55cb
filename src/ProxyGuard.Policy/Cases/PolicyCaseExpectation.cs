namespace ProxyGuard.Policy;

/// <summary>What a case expects. Optional parts (<c>null</c>) are not checked.</summary>
public sealed record PolicyCaseExpectation(bool Allow, string? Rule, string? Reason, TunnelMode? Mode, bool? WebSocket);
