namespace ProxyGuard.Policy;

/// <summary>The <c>content</c> section.</summary>
public sealed class ContentSpec
{
    /// <summary>The default maximum scanned body size (8 MiB).</summary>
    public const long DefaultMaxBody = 8L * 1024 * 1024;

    /// <summary>Built-in detectors to run: <c>null</c> = all, empty = none.</summary>
    public IReadOnlyList<string>? BuiltinDetectorIds { get; init; }

    public bool ScanHeaders { get; init; } = true;

    public bool ScanQuery { get; init; } = true;

    public bool ScanBody { get; init; } = true;

    public long MaxBody { get; init; } = DefaultMaxBody;

    /// <summary><c>over_limit: allow</c>: bodies over <see cref="MaxBody"/> are forwarded unscanned (and recorded as such).</summary>
    public bool OverLimitAllow { get; init; }

    public IReadOnlyList<ContentRuleSpec> Rules { get; init; } = [];

    public IReadOnlyList<ExemptionSpec> Exempt { get; init; } = [];

    /// <summary>True when detector <paramref name="detectorId"/> is exempt toward <paramref name="normalizedHost"/>.</summary>
    public bool IsExempt(string detectorId, string normalizedHost)
    {
        foreach (var exemption in Exempt)
        {
            if (exemption.Hosts.Matches(normalizedHost))
            {
                foreach (var detector in exemption.Detectors)
                {
                    if (string.Equals(detector, detectorId, StringComparison.Ordinal))
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }
}
