namespace ProxyGuard.Policy;

/// <summary>A <c>content.exempt[]</c> entry: these detectors are not applied toward these hosts.</summary>
public sealed class ExemptionSpec
{
    public required IReadOnlyList<string> Detectors { get; init; }

    public required HostMatcher Hosts { get; init; }

    public required IReadOnlyList<string> HostPatterns { get; init; }

    public int Line { get; init; }
}
