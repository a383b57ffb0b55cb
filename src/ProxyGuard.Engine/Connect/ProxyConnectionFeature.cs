using System.Net;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Connect;

/// <summary>Per-connection state of a proxy-listener connection, set by <see cref="ConnectMiddleware"/>.</summary>
public sealed class ProxyConnectionFeature
{
    public ProxyConnectionFeature(IPAddress? remoteAddress)
    {
        RemoteAddress = remoteAddress;
    }

    public IPAddress? RemoteAddress { get; }

    /// <summary>Set for intercepted CONNECT tunnels: every request on this connection goes here.</summary>
    public TunnelTarget? Tunnel { get; set; }

    /// <summary>The SNI the client sent in the intercepted tunnel (normalised), if any.</summary>
    public string? Sni { get; set; }

    /// <summary>Set once a plain (absolute-form) request was served; a later CONNECT is refused.</summary>
    public bool ServedPlainRequest { get; set; }
}

/// <summary>The authenticated CONNECT target of a tunnel.</summary>
public sealed record TunnelTarget(string Host, int Port, string? ClientId, TunnelMode Mode, string Rule)
{
    public string Authority => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
