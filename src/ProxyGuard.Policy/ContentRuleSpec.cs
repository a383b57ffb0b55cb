using System.Text.RegularExpressions;

namespace ProxyGuard.Policy;

/// <summary>A custom content rule (<c>content.rules[]</c>).</summary>
public sealed class ContentRuleSpec
{
    public required string Name { get; init; }

    /// <summary>The .NET regular expression as written.</summary>
    public required string Pattern { get; init; }

    /// <summary>The pattern compiled with <see cref="RegexOptions.NonBacktracking"/> (linear time).</summary>
    public required Regex Regex { get; init; }

    public required ContentRuleAction Action { get; init; }

    /// <summary>Where the rule applies (default <c>*</c>).</summary>
    public required HostMatcher Hosts { get; init; }

    public required IReadOnlyList<string> HostPatterns { get; init; }

    public int Line { get; init; }
}
