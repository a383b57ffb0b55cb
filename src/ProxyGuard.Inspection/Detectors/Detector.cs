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

    /// <summary>True when <see cref="TryMatch(ReadOnlySpan{char}, int, int, bool, DetectorMemo, out int, out int)"/> uses its memo.</summary>
    public virtual bool UsesMemo => false;

    /// <summary>
    /// <see cref="TryMatch(ReadOnlySpan{char}, int, int, bool, out int, out int)"/> with a memo that lives for one pass
    /// over one text, hits in increasing order. Detectors whose confirmation looks far from the hit (a 16 KiB JWT, a
    /// key field 8 KiB away) remember what they found there, so n hits cost O(n) and not O(n x window).
    /// </summary>
    public virtual bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, DetectorMemo memo, out int start, out int length) =>
        TryMatch(text, hit, anchorLength, ignoreCase, out start, out length);
}

/// <summary>Scratch state of one detector during one pass over one text (see <see cref="Detector.UsesMemo"/>).</summary>
internal sealed class DetectorMemo
{
    /// <summary>Set by the scanner: the pass this memo belongs to.</summary>
    public int Pass = -1;

    /// <summary>False at the start of each pass; the detector sets it once it stored something.</summary>
    public bool Valid;
    public int From;
    public int To;
    public int A;
    public int B;
    public int C;
}
