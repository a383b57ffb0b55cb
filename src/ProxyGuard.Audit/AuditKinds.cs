namespace ProxyGuard.Audit;

/// <summary>The values of <see cref="AuditEvent.Kind"/>.</summary>
public static class AuditKinds
{
    public const string Request = "request";
    public const string Connect = "connect";
    public const string Tunnel = "tunnel";

    /// <summary>An operator's time-boxed grant was created, revoked or expired (<see cref="AuditEvent.Grant"/>).</summary>
    public const string Grant = "grant";
}
