using System.Net;

namespace ProxyGuard.Policy;

/// <summary>
/// A compiled list of host patterns: <c>*</c> (any host), exact names, <c>*.example.com</c> (any depth below the
/// suffix, never the apex), IP addresses and CIDRs (which match IP-literal destinations only).
/// Input must already be normalised with <see cref="HostNormalizer"/>.
/// </summary>
public sealed class HostMatcher
{
    private readonly bool _any;
    private readonly HashSet<string> _exact;
    private readonly string[] _suffixes;
    private readonly IPNetwork[] _networks;

    internal HostMatcher(bool any, IEnumerable<string> exact, IEnumerable<string> dotSuffixes, IEnumerable<IPNetwork> networks)
    {
        _any = any;
        _exact = new HashSet<string>(exact, StringComparer.Ordinal);
        _suffixes = [.. dotSuffixes];
        _networks = [.. networks];
    }

    /// <summary>A matcher that matches every host.</summary>
    public static HostMatcher Any { get; } = new(true, [], [], []);

    /// <summary>A matcher that matches no host.</summary>
    public static HostMatcher None { get; } = new(false, [], [], []);

    /// <summary>True when the matcher is <c>*</c>.</summary>
    public bool MatchesAny => _any;

    /// <summary>The exact host names (normalised) this matcher matches.</summary>
    internal IEnumerable<string> ExactNames => _exact;

    /// <summary>The wildcard suffixes, each with its leading dot (<c>*.example.com</c> is <c>.example.com</c>).</summary>
    internal IReadOnlyList<string> DotSuffixes => _suffixes;

    /// <summary>The address ranges (CIDR or single addresses).</summary>
    internal IReadOnlyList<IPNetwork> Networks => _networks;

    public bool Matches(string normalizedHost)
    {
        if (_any)
        {
            return true;
        }

        if (string.IsNullOrEmpty(normalizedHost))
        {
            return false;
        }

        if (_exact.Contains(normalizedHost))
        {
            return true;
        }

        if (_networks.Length > 0 && HostNormalizer.TryGetAddress(normalizedHost, out var address))
        {
            foreach (var network in _networks)
            {
                if (network.BaseAddress.AddressFamily == address.AddressFamily && network.Contains(address))
                {
                    return true;
                }
            }

            return false;
        }

        foreach (var suffix in _suffixes)
        {
            if (normalizedHost.Length > suffix.Length && normalizedHost.EndsWith(suffix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
