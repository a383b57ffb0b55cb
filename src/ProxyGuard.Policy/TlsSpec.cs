namespace ProxyGuard.Policy;

/// <summary>The <c>tls</c> section.</summary>
public sealed class TlsSpec
{
    /// <summary>Extra PEM roots trusted for upstream servers, as absolute paths (relative entries are resolved against the policy file's directory).</summary>
    public required IReadOnlyList<string> UpstreamCaFiles { get; init; }
}
