namespace ProxyGuard.Policy.Decisions;

/// <summary>
/// One entry of the closed reason vocabulary: the same string is sent in <c>X-ProxyGuard-Reason</c>,
/// recorded in events, used as a metric label and printed by <c>policy explain</c> / <c>policy test</c>.
/// </summary>
/// <param name="Name">The wire name.</param>
/// <param name="Stage">The stage that can produce it.</param>
/// <param name="Status">The HTTP status a refused client gets (0 when the connection is closed without one, or for allow reasons).</param>
/// <param name="Auditable">True when <c>mode: audit</c> turns this refusal into <c>audit-deny</c> (forwarded and recorded);
/// false when it is always enforced (protocol safety, limits, secrets, the audit store).</param>
/// <param name="Description">One line for the docs and <c>policy explain</c>.</param>
public sealed record Reason(string Name, DecisionStage Stage, int Status, bool Auditable, string Description)
{
    public override string ToString() => Name;
}
