using ProxyGuard.Audit;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Inspection;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>Applies the snapshot's content scanner to the parts of a request and collects findings.</summary>
internal static class ContentChecks
{
    /// <summary>Scans a host name (CONNECT target, Host, SNI): a credential in a DNS label is exfiltration.</summary>
    public static Denial? ScanHost(ProxySnapshot snapshot, string host)
    {
        if (snapshot.Scanner is null)
        {
            return null;
        }

        var result = snapshot.Scanner.ScanText(host, ScanLocation.Host, host);
        var blocking = result.Findings.FirstOrDefault(f => f.Action == ContentAction.Deny);
        return result.Blocked
            ? new Denial(403, blocking?.Detector ?? "content", "content-finding",
                $"the host name looks like it carries a credential ({blocking?.Detector ?? result.Error}), which would leak through DNS")
            : null;
    }

    /// <summary>
    /// The host to record in the event of a host-name refusal: the credential is in its labels, so only the last two
    /// (where the request was headed) are kept.
    /// </summary>
    public static string HostForEvent(string host)
    {
        var labels = host.Split('.');
        return labels.Length <= 2 ? "[redacted]" : "[redacted]." + labels[^2] + "." + labels[^1];
    }

    public static string LocationName(ScanLocation location) => location switch
    {
        ScanLocation.Host => "host",
        ScanLocation.Header => "header",
        ScanLocation.Query => "query",
        _ => "body",
    };

    public static string ActionName(ContentAction action) => action switch
    {
        ContentAction.Redact => "redact",
        ContentAction.Log => "log",
        _ => "deny",
    };

    public static void Collect(ScanResult result, List<AuditFinding> findings, ProxyMetrics metrics)
    {
        foreach (var finding in result.Findings)
        {
            findings.Add(new AuditFinding(finding.Detector, LocationName(finding.Location), ActionName(finding.Action)));
            metrics.Findings.WithLabels(finding.Detector, ActionName(finding.Action)).Inc();
        }
    }
}
