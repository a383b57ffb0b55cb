namespace ProxyGuard.Policy;

/// <summary>The decision for one HTTP request. <paramref name="Rule"/> is a rule name or <c>default</c>.</summary>
public sealed record RequestDecision(bool Allowed, string Rule, string Reason, bool WebSocketAllowed);
