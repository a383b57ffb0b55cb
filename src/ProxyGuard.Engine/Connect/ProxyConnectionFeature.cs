using System.Net;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Connect;

/// <summary>
/// Per-connection state of a proxy-listener connection, set by <see cref="ConnectMiddleware"/>. Immutable: an
/// accepted CONNECT replaces it with one that carries the tunnel target.
/// </summary>
internal sealed class ProxyConnectionFeature(IPAddress? remoteAddress, TunnelTarget? tunnel = null)
{
    public IPAddress? RemoteAddress { get; } = remoteAddress;

    /// <summary>Set for CONNECT tunnels: every request on this connection goes here.</summary>
    public TunnelTarget? Tunnel { get; } = tunnel;
}

/// <summary>The authenticated CONNECT target of a tunnel.</summary>
internal sealed record TunnelTarget(string Host, int Port, string? ClientId, TunnelMode Mode, string Rule)
{
    /// <summary>
    /// Set for a refused CONNECT that is answered inside TLS (readable denials): the first request on the tunnel gets
    /// this refusal and the connection closes; nothing is forwarded.
    /// </summary>
    public Forwarding.Denial? Refusal { get; init; }

    public string Authority => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
