using System.Buffers;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// The prefilter: the literal anchors of the enabled detectors in a few <see cref="SearchValues{T}"/> (vectorised
/// multi-string "Teddy" search), plus a first-character index to find which anchors sit at a hit. Anchors are
/// sorted and split into groups of <see cref="GroupSize"/>: one set of ~100 strings saturates Teddy's buckets and
/// runs ~10x slower than seven passes over small sets whose members share leading characters.
/// </summary>
internal sealed class AnchorTable
{
    public const int GroupSize = 16;

    private readonly Dictionary<char, Entry[]> _byFirst;

    private AnchorTable(SearchValues<string>[] groups, Dictionary<char, Entry[]> byFirst, bool ignoreCase)
    {
        Groups = groups;
        _byFirst = byFirst;
        IgnoreCase = ignoreCase;
    }

    public SearchValues<string>[] Groups { get; }

    public bool IgnoreCase { get; }

    public StringComparison Comparison => IgnoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public bool TryGetEntries(char first, out Entry[] entries) =>
        _byFirst.TryGetValue(IgnoreCase ? char.ToLowerInvariant(first) : first, out entries!);

    public static AnchorTable? Build(IEnumerable<(string Anchor, Detector Detector)> pairs, bool ignoreCase)
    {
        var comparer = ignoreCase ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;
        var byAnchor = new Dictionary<string, List<Detector>>(comparer);
        foreach (var (anchor, detector) in pairs)
        {
            if (anchor.Length == 0)
            {
                continue;
            }

            if (!byAnchor.TryGetValue(anchor, out var list))
            {
                list = [];
                byAnchor.Add(anchor, list);
            }

            if (!list.Contains(detector))
            {
                list.Add(detector);
            }
        }

        if (byAnchor.Count == 0)
        {
            return null;
        }

        var byFirst = new Dictionary<char, List<Entry>>();
        foreach (var (anchor, detectors) in byAnchor)
        {
            var key = ignoreCase ? char.ToLowerInvariant(anchor[0]) : anchor[0];
            if (!byFirst.TryGetValue(key, out var entries))
            {
                entries = [];
                byFirst.Add(key, entries);
            }

            entries.Add(new Entry(anchor, [.. detectors]));
        }

        var comparison = ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        var groups = byAnchor.Keys
            .Order(ignoreCase ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal)
            .Chunk(GroupSize)
            .Select(group => SearchValues.Create(group, comparison))
            .ToArray();
        return new AnchorTable(groups, byFirst.ToDictionary(p => p.Key, p => p.Value.ToArray()), ignoreCase);
    }

    internal readonly record struct Entry(string Anchor, Detector[] Detectors);
}
