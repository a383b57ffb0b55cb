namespace ProxyGuard.Policy.Lifecycle;

/// <summary>
/// One recorded decision as the policy lifecycle commands see it (taken from an audit event): what the sandbox asked
/// for and what the proxy decided then. Never a secret value: events hold none.
/// </summary>
public sealed record ObservedRequest
{
    public long Id { get; init; }

    public DateTimeOffset Time { get; init; }

    public string? Client { get; init; }

    /// <summary><c>request</c>, <c>connect</c> or <c>tunnel</c>.</summary>
    public required string Kind { get; init; }

    public string? Method { get; init; }

    public string? Scheme { get; init; }

    public required string Host { get; init; }

    public int Port { get; init; }

    /// <summary>The recorded path (query values removed).</summary>
    public string? Path { get; init; }

    /// <summary><c>allow</c>, <c>deny</c> or <c>audit-deny</c>.</summary>
    public required string Decision { get; init; }

    public string? Rule { get; init; }

    public string? Reason { get; init; }

    /// <summary>Content findings: which detector fired and where (never the matched text).</summary>
    public IReadOnlyList<(string Detector, string Location)> Findings { get; init; } = [];

    public bool IsRequest => string.Equals(Kind, "request", StringComparison.Ordinal);

    /// <summary>The path without its (redacted) query.</summary>
    public string PathOnly
    {
        get
        {
            var p = string.IsNullOrEmpty(Path) ? "/" : Path;
            var q = p.IndexOf('?', StringComparison.Ordinal);
            return q < 0 ? p : p[..q];
        }
    }

    /// <summary>The request as a URL for cases and reports: <c>scheme://host:port/path</c> (no query).</summary>
    public string Url
    {
        get
        {
            var scheme = string.IsNullOrEmpty(Scheme) ? (IsRequest ? "http" : "https") : Scheme;
            var host = Host.Contains(':', StringComparison.Ordinal) && !Host.StartsWith('[') ? "[" + Host + "]" : Host;
            return $"{scheme}://{host}:{Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}{(IsRequest ? PathOnly : "/")}";
        }
    }
}
