using System.Collections.Concurrent;

namespace ProxyGuard.Policy;

/// <summary>
/// Which rules can match a host, so a decision walks a handful of rules instead of all of them (decision cost stays
/// flat as a policy grows to thousands of rules). Built once per policy from each rule's host patterns: exact names,
/// <c>*.suffix</c> wildcards (found by looking up each dot-suffix of the host), address ranges (found by masking the
/// address to each prefix length the policy uses) and rules that must always be checked (<c>*</c>). The candidates are a superset of the rules whose host matcher matches, in
/// policy order; callers still run every check of each candidate, so first-match semantics are unchanged. Candidate
/// lists are remembered for up to <see cref="MaxCachedHosts"/> hosts; past that they are computed per request.
/// </summary>
internal sealed class RuleIndex
{
    internal const int MaxCachedHosts = 16_384;

    private readonly Dictionary<string, int[]> _exact;
    private readonly Dictionary<string, int[]> _suffix;
    private readonly int[] _always;
    private readonly Dictionary<string, int[]> _networks;
    private readonly (System.Net.Sockets.AddressFamily Family, int Prefix)[] _prefixes;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public RuleIndex(IReadOnlyList<RuleSpec> rules)
    {
        var exact = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var suffix = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var always = new List<int>();
        var networks = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var prefixes = new HashSet<(System.Net.Sockets.AddressFamily, int)>();
        for (var i = 0; i < rules.Count; i++)
        {
            var matcher = rules[i].HostMatcher;
            if (matcher.MatchesAny)
            {
                always.Add(i);
                continue;
            }

            foreach (var name in matcher.ExactNames)
            {
                Add(exact, name, i);
            }

            foreach (var dotSuffix in matcher.DotSuffixes)
            {
                Add(suffix, dotSuffix, i);
            }

            foreach (var network in matcher.Networks)
            {
                var family = network.BaseAddress.AddressFamily;
                prefixes.Add((family, network.PrefixLength));
                Add(networks, NetworkKey(network.BaseAddress.GetAddressBytes(), network.PrefixLength), i);
            }
        }

        _exact = exact.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _suffix = suffix.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _always = [.. always];
        _networks = networks.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _prefixes = [.. prefixes];
    }

    /// <summary>Indices (ascending) of the rules whose host patterns can match <paramref name="normalizedHost"/>.</summary>
    public int[] Candidates(string normalizedHost)
    {
        if (_cache.TryGetValue(normalizedHost, out var known))
        {
            return known;
        }

        var candidates = Compute(normalizedHost);
        if (_cache.Count < MaxCachedHosts)
        {
            _cache.TryAdd(normalizedHost, candidates);
        }

        return candidates;
    }

    private int[] Compute(string host)
    {
        var found = new List<int>(_always);
        if (_exact.TryGetValue(host, out var exact))
        {
            found.AddRange(exact);
        }

        // A suffix ".b.c" matches "a.b.c": look up every suffix of the host that starts at a dot after its first character.
        for (var dot = host.IndexOf('.', 1); dot > 0; dot = dot + 1 < host.Length ? host.IndexOf('.', dot + 1) : -1)
        {
            if (_suffix.TryGetValue(host[dot..], out var bySuffix))
            {
                found.AddRange(bySuffix);
            }
        }

        if (_prefixes.Length > 0 && HostNormalizer.TryGetAddress(host, out var address))
        {
            var bytes = address.GetAddressBytes();
            foreach (var (family, prefix) in _prefixes)
            {
                if (family == address.AddressFamily && _networks.TryGetValue(NetworkKey(bytes, prefix), out var inRange))
                {
                    found.AddRange(inRange);
                }
            }
        }

        found.Sort();
        var unique = new List<int>(found.Count);
        foreach (var index in found)
        {
            if (unique.Count == 0 || unique[^1] != index)
            {
                unique.Add(index);
            }
        }

        return [.. unique];
    }

    /// <summary>The address masked to <paramref name="prefix"/> bits, with the prefix: equal for every address in one range.</summary>
    private static string NetworkKey(byte[] address, int prefix)
    {
        var masked = (byte[])address.Clone();
        for (var bit = prefix; bit < masked.Length * 8; bit++)
        {
            masked[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return Convert.ToHexString(masked) + "/" + prefix.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Add(Dictionary<string, List<int>> map, string key, int rule)
    {
        if (!map.TryGetValue(key, out var list))
        {
            map[key] = list = [];
        }

        if (list.Count == 0 || list[^1] != rule)
        {
            list.Add(rule);
        }
    }
}
