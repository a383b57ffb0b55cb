namespace ProxyGuard.Engine.Runtime;

/// <summary>Resource bounds of the proxy listener (documented in docs/operations.md).</summary>
public sealed record ProxyLimits
{
    /// <summary>Bytes of a CONNECT head (request line and headers).</summary>
    public int MaxConnectHeadBytes { get; init; } = 8 * 1024;

    /// <summary>Time a client has to send a complete CONNECT head (or first request bytes).</summary>
    public TimeSpan ConnectHeadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a client has to complete the TLS handshake inside a tunnel.</summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Bytes of all request headers (Kestrel limit).</summary>
    public int MaxRequestHeadersTotalSize { get; init; } = 64 * 1024;

    /// <summary>Bytes of the request line (Kestrel limit).</summary>
    public int MaxRequestLineSize { get; init; } = 16 * 1024;

    /// <summary>Keep-alive idle time of client connections (Kestrel limit).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Idle time of a pass-through or TCP tunnel in either direction.</summary>
    public TimeSpan TunnelIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Concurrent connections per client (client id, or source address without clients): past it, 429.</summary>
    public int MaxConnectionsPerClient { get; init; } = 512;

    /// <summary>Leaf certificates kept in the LRU cache.</summary>
    public int CertificateCacheSize { get; init; } = 10_000;

    /// <summary>Time to establish an upstream TCP connection.</summary>
    public TimeSpan UpstreamConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a request may wait for the audit queue when it is full before failing closed.</summary>
    public TimeSpan EventQueueWait { get; init; } = TimeSpan.FromSeconds(5);
}
