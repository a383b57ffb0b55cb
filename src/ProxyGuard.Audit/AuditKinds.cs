namespace ProxyGuard.Audit;

/// <summary>The values of <see cref="AuditEvent.Kind"/>.</summary>
public static class AuditKinds
{
    public const string Request = "request";
    public const string Connect = "connect";
    public const string Tunnel = "tunnel";
}
