namespace ProxyGuard.Policy;

/// <summary>
/// The policy's verdict on a whole request as a client would make it (the CONNECT first for https, then the request
/// inside the tunnel). <paramref name="Stage"/> says which step decided: <c>client</c>, <c>connect</c> or <c>request</c>.
/// <paramref name="AuditOnly"/> is true when the policy is in audit mode and the request would have been denied.
/// </summary>
public sealed record PolicyEvaluation(
    bool Allowed,
    string Rule,
    string Reason,
    string Stage,
    TunnelMode? TunnelMode,
    bool WebSocketAllowed,
    string NormalizedHost,
    int Port,
    PathNormalization Path,
    bool AuditOnly)
{
    /// <summary>The decision itself (verdict, rule, reason, stage, mode).</summary>
    public Decisions.Decision? Decision { get; init; }
}
