namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// Maps a range in a decoded layer back to the root text (the identity body, the header value, the raw query), so a
/// redaction found in decoded content can be applied to what is forwarded. Layers whose decoding cannot be mapped
/// character by character (base64, quoted-printable, decompression) map to their whole source range.
/// </summary>
internal sealed class LayerMap
{
    private readonly LayerMap? _parent;
    private readonly int[]? _offsets;
    private readonly int[]? _ends;
    private readonly int _base;
    private readonly int _wholeStart;
    private readonly int _wholeEnd;

    private LayerMap(LayerMap? parent, int[]? offsets, int @base, int wholeStart, int wholeEnd, int[]? ends = null)
    {
        _parent = parent;
        _offsets = offsets;
        _ends = ends;
        _base = @base;
        _wholeStart = wholeStart;
        _wholeEnd = wholeEnd;
    }

    /// <summary>Child index k comes from parent index base + offsets[k]; offsets[n] is the source length.</summary>
    public static LayerMap Offsets(LayerMap? parent, int[] offsets, int @base) => new(parent, offsets, @base, -1, -1);

    /// <summary>Like <see cref="Offsets(LayerMap?, int[], int)"/> with an explicit source end for each child char (pieces joined from several places).</summary>
    public static LayerMap Joined(int[] starts, int[] ends) => new(null, starts, 0, -1, -1, ends);

    /// <summary>The whole child maps to [start, end) of the parent.</summary>
    public static LayerMap Whole(LayerMap? parent, int start, int end) => new(parent, null, 0, start, end);

    /// <summary>Child index k is parent index shift + k.</summary>
    public static LayerMap Shift(LayerMap? parent, int shift) => new(parent, null, shift, -2, -2);

    public static (int Start, int End) ToRoot(LayerMap? map, int start, int end)
    {
        while (map is not null)
        {
            (start, end) = map.ToParent(start, end);
            map = map._parent;
        }

        return (start, end);
    }

    private (int Start, int End) ToParent(int start, int end)
    {
        if (_offsets is not null)
        {
            var sourceEnd = _ends is not null && end > 0 ? _ends[end - 1] : _offsets[end];
            return (_base + _offsets[start], _base + sourceEnd);
        }

        if (_wholeStart == -2)
        {
            return (_base + start, _base + end);
        }

        return (_wholeStart, _wholeEnd);
    }
}
