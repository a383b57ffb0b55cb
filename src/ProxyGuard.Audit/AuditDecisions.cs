namespace ProxyGuard.Audit;

/// <summary>The values of <see cref="AuditEvent.Decision"/>.</summary>
public static class AuditDecisions
{
    public const string Allow = "allow";
    public const string Deny = "deny";
    public const string AuditDeny = "audit-deny";

    /// <summary>True for every decision except <c>allow</c>: such events must never be dropped.</summary>
    public static bool IsDeny(string? decision) => !string.Equals(decision, Allow, StringComparison.Ordinal);
}
