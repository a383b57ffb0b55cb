namespace ProxyGuard.Policy;

/// <summary>
/// What a case expects. Optional parts (<c>null</c>) are not checked. <paramref name="Findings"/> are detector or
/// content-rule ids, <paramref name="Secrets"/> the names of the secrets substituted; both compare as sets
/// (<c>[]</c> expects none). <paramref name="Allow"/> false expects <c>deny</c> or <c>audit-deny</c> (the same cases
/// serve both modes); <see cref="AuditDeny"/> expects <c>audit-deny</c> only, as an audit-mode event records it.
/// </summary>
public sealed record PolicyCaseExpectation(
    bool Allow, string? Rule, string? Reason, TunnelMode? Mode, bool? WebSocket,
    IReadOnlyList<string>? Findings = null, IReadOnlyList<string>? Secrets = null)
{
    /// <summary>Names of the budgets that would count the request (compared as a set; <c>[]</c> expects none).</summary>
    public IReadOnlyList<string>? Budgets { get; init; }

    /// <summary>True for <c>decision: audit-deny</c> (copied from an audit-mode event): only an audit-mode denial passes.</summary>
    public bool AuditDeny { get; init; }

    /// <summary>The expected decision in the events' and headers' words.</summary>
    public string Verdict => Allow ? "allow" : AuditDeny ? "audit-deny" : "deny";
}
