namespace ProxyGuard.Policy;

/// <summary>The decision for a CONNECT target. <paramref name="Rule"/> is a rule name or <c>default</c>.</summary>
public sealed record ConnectDecision(bool Allowed, string Rule, string Reason, TunnelMode Mode);
