namespace ProxyGuard.Inspection.Detectors;

/// <summary>
/// A built-in detector. The scanner finds one of its literal anchors (prefilter) and then asks the detector to
/// confirm a match near the anchor. Detectors are stateless and thread-safe.
/// </summary>
internal abstract class Detector
{
    protected Detector(string id, string description, string[] anchors, string[] keywords)
    {
        Id = id;
        Description = description;
        Anchors = anchors;
        Keywords = keywords;
    }

    public string Id { get; }

    public string Description { get; }

    /// <summary>Case-sensitive literal anchors (token prefixes or fixed infixes).</summary>
    public string[] Anchors { get; }

    /// <summary>Case-insensitive context keywords.</summary>
    public string[] Keywords { get; }

    /// <summary>Set by the catalog: position in <see cref="BuiltinCatalog.All"/>.</summary>
    public int Index { get; set; }

    /// <summary>
    /// Confirms a match near <paramref name="hit"/> (where an anchor or keyword of length
    /// <paramref name="anchorLength"/> starts). Returns the matched range in <paramref name="text"/>.
    /// </summary>
    public abstract bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length);
}
