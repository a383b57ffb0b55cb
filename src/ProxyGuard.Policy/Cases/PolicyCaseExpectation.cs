namespace ProxyGuard.Policy;

/// <summary>
/// What a case expects. Optional parts (<c>null</c>) are not checked. <paramref name="Findings"/> are detector or
/// content-rule ids, <paramref name="Secrets"/> the names of the secrets substituted; both compare as sets
/// (<c>[]</c> expects none).
/// </summary>
public sealed record PolicyCaseExpectation(
    bool Allow, string? Rule, string? Reason, TunnelMode? Mode, bool? WebSocket,
    IReadOnlyList<string>? Findings = null, IReadOnlyList<string>? Secrets = null)
{
    /// <summary>Names of the budgets that would count the request (compared as a set; <c>[]</c> expects none).</summary>
    public IReadOnlyList<string>? Budgets { get; init; }
}
