namespace ProxyGuard.Audit;

/// <summary>A content finding: which detector fired, where, and what was done. Never the matched content.</summary>
public sealed record AuditFinding(string Detector, string Location, string Action);
