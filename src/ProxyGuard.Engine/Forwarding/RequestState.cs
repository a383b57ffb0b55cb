using Microsoft.AspNetCore.Http;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>What one request has gathered on its way through the pipeline (for forwarding and its event).</summary>
internal sealed class RequestState
{
    public RequestState(HttpContext context, ProxyConnectionFeature connection, ProxySnapshot snapshot, long started)
    {
        Context = context;
        Connection = connection;
        Snapshot = snapshot;
        Started = started;
    }

    public HttpContext Context { get; }

    public ProxyConnectionFeature Connection { get; }

    public ProxySnapshot Snapshot { get; }

    public long Started { get; }

    public RequestTarget? Target { get; set; }

    public string? ClientId { get; set; }

    public string? Rule { get; set; }

    public string? Reason { get; set; }

    /// <summary>In audit mode: the denial enforce mode would have made.</summary>
    public Denial? AuditDenial { get; set; }

    public List<AuditFinding> Findings { get; } = [];

    public List<string> Injected { get; } = [];

    public ReadOnlyMemory<byte>? BufferedBody { get; set; }

    public bool UnscannedBody { get; set; }

    public long RequestBytes { get; set; }

    public long ResponseBytes { get; set; }
}
