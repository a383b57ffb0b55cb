namespace ProxyGuard.Policy;

/// <summary>The <c>tls</c> section.</summary>
public sealed class TlsSpec
{
    /// <summary>The largest CA file read from <c>tls.upstream_ca_files</c> (system bundles are about 200 KiB).</summary>
    public const int MaxCaFileBytes = 4 * 1024 * 1024;

    /// <summary>Extra PEM roots trusted for upstream servers, as absolute paths (relative entries are resolved against the policy file's directory).</summary>
    public required IReadOnlyList<string> UpstreamCaFiles { get; init; }
}
