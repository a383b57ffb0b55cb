namespace ProxyGuard.Policy;

/// <summary>How an allowed CONNECT tunnel is handled.</summary>
public enum TunnelMode
{
    /// <summary>TLS is intercepted; each request inside is decided individually.</summary>
    Intercept,

    /// <summary><c>inspect: false</c>: TLS is tunnelled untouched; only the SNI is checked.</summary>
    Passthrough,

    /// <summary><c>protocol: tcp</c>: a raw TCP tunnel; TLS is not expected.</summary>
    Tcp,
}
