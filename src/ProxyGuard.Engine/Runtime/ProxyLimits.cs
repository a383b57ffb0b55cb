namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Resource bounds of the proxy listener (documented in docs/anti-bypass.md). Each can be overridden
/// by the operator with an environment variable <c>PROXYGUARD_LIMIT_&lt;NAME&gt;</c> (see
/// <see cref="WithEnvironment"/>); sizes and counts are integers, times are seconds.
/// </summary>
internal sealed record ProxyLimits
{
    /// <summary>Bytes of a CONNECT head (request line and headers).</summary>
    public int MaxConnectHeadBytes { get; init; } = 8 * 1024;

    /// <summary>Time a client has to send a complete CONNECT head (or first request bytes).</summary>
    public TimeSpan ConnectHeadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a client has to complete the TLS handshake inside a tunnel.</summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a client has to send a complete request head once the HTTP layer runs (Kestrel limit).</summary>
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Bytes of all request headers (Kestrel limit).</summary>
    public int MaxRequestHeadersTotalSize { get; init; } = 64 * 1024;

    /// <summary>Bytes of the request line (Kestrel limit).</summary>
    public int MaxRequestLineSize { get; init; } = 16 * 1024;

    /// <summary>Keep-alive idle time of client connections (Kestrel limit).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Idle time of a pass-through or TCP tunnel in either direction.</summary>
    public TimeSpan TunnelIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Time a relayed WebSocket may carry no frame in either direction before the proxy closes it (1001).</summary>
    public TimeSpan WebSocketIdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest a relayed WebSocket may stay open, busy or not, before the proxy closes it (1001).</summary>
    public TimeSpan WebSocketMaxLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Concurrent connections per client (client id, or source address without clients): past it, 429.</summary>
    public int MaxConnectionsPerClient { get; init; } = 512;

    /// <summary>
    /// Forwarded requests in flight per client (client id, and source address), across all its connections and HTTP/2
    /// streams: each can hold an upstream connection and the proxy's buffers until its response is read. Past it, 429.
    /// Unset (0): twice <see cref="MaxConnectionsPerClient"/>, so HTTP/1.1 clients (one request per connection) are
    /// never limited by it, and HTTP/2 clients keep room to multiplex (1024 with the defaults, ten connections' worth
    /// of streams) while stalled streams cannot multiply the connection limit (R7-6).
    /// </summary>
    public int MaxRequestsInFlightPerClient { get; init; }

    /// <summary>The effective <see cref="MaxRequestsInFlightPerClient"/>.</summary>
    public int RequestsInFlightPerClient =>
        MaxRequestsInFlightPerClient > 0 ? MaxRequestsInFlightPerClient : (int)Math.Min(int.MaxValue, 2L * MaxConnectionsPerClient);

    /// <summary>
    /// Upstream connections open at once across the process (pooled idle ones included). Past it, a request that needs
    /// a new connection is refused (<c>503 over-capacity</c>) rather than opening one.
    /// </summary>
    public int MaxUpstreamConnections { get; init; } = 4096;

    /// <summary>Leaf certificates kept in the LRU cache.</summary>
    public int CertificateCacheSize { get; init; } = 10_000;

    /// <summary>Time to establish an upstream TCP connection.</summary>
    public TimeSpan UpstreamConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Request-body bytes buffered for scanning across all requests in flight (process-wide). A request reserves its
    /// declared Content-Length (or 64 KiB steps of a body without one) before reading; past it, <c>503 over-capacity</c>.
    /// Default: 256 MiB, or a quarter of the memory available to the process (container limit) when that is less.
    /// </summary>
    public int MaxBufferedBodyBytes { get; init; } = DefaultByteBudget();

    /// <summary>
    /// Bytes of decompression output held at once across the process: the scanner's decoded request bodies and parts,
    /// and the decoders of responses that are decoded to be scrubbed. Past it, <c>503 over-capacity</c>. Default as
    /// <see cref="MaxBufferedBodyBytes"/>.
    /// </summary>
    public int MaxDecompressedBytes { get; init; } = DefaultByteBudget();

    /// <summary>Content scans running at once (process-wide). Default: twice the processor count, at least 4.</summary>
    public int MaxConcurrentScans { get; init; } = Math.Max(4, 2 * Environment.ProcessorCount);

    /// <summary>Time a request may wait for a scan slot before it is refused (<c>503 over-capacity</c>).</summary>
    public TimeSpan ScanQueueTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Concurrent HTTP/2 streams per client connection (Kestrel; past it the stream is reset with REFUSED_STREAM).</summary>
    public int MaxStreamsPerConnection { get; init; } = 100;

    /// <summary>
    /// Bytes of WebSocket messages held for inspection across the whole process (each message is also bounded by
    /// <c>content.max_body</c>). Past it, a connection that needs more is closed with 1013.
    /// </summary>
    public int MaxWebSocketBufferedBytes { get; init; } = 256 * 1024 * 1024;

    /// <summary>Operator grants active at once (<c>POST /api/grants</c> past it: 409).</summary>
    public int MaxGrants { get; init; } = 256;

    /// <summary>
    /// Budget keys (one per budget limit and client/host/rule combination) tracked at once; about 0.5 KiB each. Idle keys
    /// (nothing counted in their window) are evicted; past the bound with none idle, a request needing a new key is
    /// refused (<c>503 over-capacity</c>).
    /// </summary>
    public int MaxBudgetKeys { get; init; } = 100_000;

    /// <summary>Time a request may wait for the audit queue when it is full before failing closed.</summary>
    public TimeSpan EventQueueWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Applies <c>PROXYGUARD_LIMIT_*</c> overrides (for example
    /// <c>PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT=64</c>, <c>PROXYGUARD_LIMIT_CONNECT_HEAD_TIMEOUT=5</c>).
    /// A value that is not a positive number is an error, so a typo cannot silently remove a bound.
    /// </summary>
    public ProxyLimits WithEnvironment(Func<string, string?> getVariable)
    {
        int Int(string name, int current) => Read(getVariable, name) is { } v ? checked((int)v) : current;
        TimeSpan Seconds(string name, TimeSpan current) => Read(getVariable, name) is { } v ? TimeSpan.FromSeconds(v) : current;
        return this with
        {
            MaxConnectHeadBytes = Int("MAX_CONNECT_HEAD_BYTES", MaxConnectHeadBytes),
            ConnectHeadTimeout = Seconds("CONNECT_HEAD_TIMEOUT", ConnectHeadTimeout),
            TlsHandshakeTimeout = Seconds("TLS_HANDSHAKE_TIMEOUT", TlsHandshakeTimeout),
            RequestHeadersTimeout = Seconds("REQUEST_HEADERS_TIMEOUT", RequestHeadersTimeout),
            MaxRequestHeadersTotalSize = Int("MAX_REQUEST_HEADERS_TOTAL_SIZE", MaxRequestHeadersTotalSize),
            MaxRequestLineSize = Int("MAX_REQUEST_LINE_SIZE", MaxRequestLineSize),
            IdleTimeout = Seconds("IDLE_TIMEOUT", IdleTimeout),
            TunnelIdleTimeout = Seconds("TUNNEL_IDLE_TIMEOUT", TunnelIdleTimeout),
            WebSocketIdleTimeout = Seconds("WEBSOCKET_IDLE_TIMEOUT", WebSocketIdleTimeout),
            WebSocketMaxLifetime = Seconds("WEBSOCKET_MAX_LIFETIME", WebSocketMaxLifetime),
            MaxConnectionsPerClient = Int("MAX_CONNECTIONS_PER_CLIENT", MaxConnectionsPerClient),
            MaxRequestsInFlightPerClient = Int("MAX_REQUESTS_IN_FLIGHT_PER_CLIENT", MaxRequestsInFlightPerClient),
            MaxUpstreamConnections = Int("MAX_UPSTREAM_CONNECTIONS", MaxUpstreamConnections),
            CertificateCacheSize = Int("CERTIFICATE_CACHE_SIZE", CertificateCacheSize),
            UpstreamConnectTimeout = Seconds("UPSTREAM_CONNECT_TIMEOUT", UpstreamConnectTimeout),
            MaxBufferedBodyBytes = Int("BUFFERED_BODY_BYTES", MaxBufferedBodyBytes),
            MaxDecompressedBytes = Int("DECOMPRESSED_BYTES", MaxDecompressedBytes),
            MaxConcurrentScans = Int("CONCURRENT_SCANS", MaxConcurrentScans),
            ScanQueueTimeout = Seconds("SCAN_QUEUE_TIMEOUT", ScanQueueTimeout),
            MaxStreamsPerConnection = Int("MAX_STREAMS_PER_CONNECTION", MaxStreamsPerConnection),
            MaxWebSocketBufferedBytes = Int("MAX_WEBSOCKET_BUFFERED_BYTES", MaxWebSocketBufferedBytes),
            MaxGrants = Int("MAX_GRANTS", MaxGrants),
            MaxBudgetKeys = Int("MAX_BUDGET_KEYS", MaxBudgetKeys),
        };
    }

    /// <summary>256 MiB, or a quarter of the memory the GC may use (the container's limit, if any) when that is less.</summary>
    private static int DefaultByteBudget()
    {
        var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var quarter = available > 0 ? available / 4 : long.MaxValue;
        return (int)Math.Clamp(quarter, 16L * 1024 * 1024, 256L * 1024 * 1024);
    }

    private static long? Read(Func<string, string?> getVariable, string name)
    {
        var text = getVariable("PROXYGUARD_LIMIT_" + name);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!long.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value is < 1 or > int.MaxValue)
        {
            throw new ArgumentException($"PROXYGUARD_LIMIT_{name} must be a whole number from 1 to {int.MaxValue}, not '{text}'");
        }

        return value;
    }
}
