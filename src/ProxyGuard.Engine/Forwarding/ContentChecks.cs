using ProxyGuard.Engine.Runtime;
using ProxyGuard.Inspection;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>Content checks shared by the CONNECT layer and the request stages.</summary>
internal static class ContentChecks
{
    /// <summary>Scans a CONNECT host name: a credential in a DNS label is exfiltration through DNS.</summary>
    public static Denial? ScanHost(ProxySnapshot snapshot, string host)
    {
        if (snapshot.ScanHost(host) is not { Blocked: true } result)
        {
            return null;
        }

        var blocking = result.Findings.FirstOrDefault(f => f.Action == ContentAction.Deny);
        return new Denial(Decision.Refuse(blocking?.Detector ?? "content", result.Error is null ? Reasons.ContentFinding : Reasons.Undecodable, snapshot.Policy.Mode),
            $"the host name looks like it carries a credential ({blocking?.Detector ?? result.Error}), which would leak through DNS");
    }

    public static string ActionName(ContentAction action) => action switch
    {
        ContentAction.Redact => "redact",
        ContentAction.Log => "log",
        _ => "deny",
    };
}
