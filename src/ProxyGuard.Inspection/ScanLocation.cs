namespace ProxyGuard.Inspection;

/// <summary>Where in a request a finding was made.</summary>
public enum ScanLocation
{
    Host,
    Header,
    Query,
    Body,
}
