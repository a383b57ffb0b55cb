// Over 400 lines: the views, the pending-prefix rule for streaming and the twice-escaped pass must
// agree exactly on positions; they are kept in one file so that agreement can be read in one place.
using System.Buffers;

namespace ProxyGuard.Inspection.Matching;

/// <summary>A real value the matcher looks for: its UTF-8 bytes and who it belongs to.</summary>
/// <param name="Owner">A caller-chosen number (e.g. the index of the secret) reported with each match.</param>
/// <param name="Value">The value's bytes. The matcher copies what it needs; the caller may clear its buffer.</param>
public readonly record struct KnownValue(int Owner, ReadOnlyMemory<byte> Value)
{
    /// <inheritdoc />
    public override string ToString() => $"KnownValue {{ Owner = {Owner}, Value = [REDACTED] }}";
}

/// <summary>A range of the input that carries a real value (in some encoding), and whose value it is.</summary>
public readonly record struct ValueMatch(int Start, int Length, int Owner)
{
    public int End => Start + Length;
}

/// <summary>
/// The one matcher of real secret values, shared by the content scanner (<c>vault-secret</c>), the
/// request leak check and the response scrubber. It finds each value:
/// raw; JSON-escaped (<c>\" \\ \/ \b \f \n \r \t</c>, <c>\uXXXX</c> in either hex case, surrogate pairs,
/// and non-ASCII bytes escaped one by one as <c>\u00XX</c>), in any mix of escaped and plain characters;
/// percent-encoded (either hex case, <c>+</c> for space, any mix incl. fully encoded);
/// HTML character references (named <c>quot amp lt gt apos nbsp</c>, decimal, hex);
/// base64 and base64url, padded or not, standalone or inside a larger base64 string at each of the
/// three byte alignments (values of at least 6 bytes), also wrapped by line breaks (CR, LF or CRLF)
/// at any line length, and under one escaping (JSON, percent or HTML escapes standing for base64
/// characters or line breaks); and two levels of escaping (any of the four escaping views over any
/// other or itself: JSON in a JSON string, percent twice, JSON then percent, HTML then JSON...).
/// Cost is linear in the input: one Aho-Corasick automaton per view, one step per byte; the two-level
/// pass adds at most 4 decodings and 16 automaton passes.
/// Immutable and thread-safe. Overlapping matches are merged into one range.
/// </summary>
public sealed class RealValueMatcher
{
    /// <summary>Encoded forms shorter than this (base64 cores) are not looked for: too many false hits.</summary>
    public const int MinimumEncodedLength = 8;

    private static readonly EscapeView[] TextViews = [EscapeView.Raw, EscapeView.Json, EscapeView.JsonLatin1, EscapeView.Url, EscapeView.Html];

    /// <summary>The escaping views composed with each other (outer and inner) in the two-level pass; index + 1 in <see cref="TextViews"/>.</summary>
    private static readonly EscapeView[] NestedViews = [EscapeView.Json, EscapeView.JsonLatin1, EscapeView.Url, EscapeView.Html];

    /// <summary>Bytes that start an escape of any view, seen through by the base64 scan.</summary>
    private static readonly byte[] EscapeStarts = "\\%&"u8.ToArray();

    /// <summary>The longest input one base64 character (or a line break) can come from: <c>&amp;#x0000002B;</c>.</summary>
    private const int Base64UnitExpansion = 12;

    private readonly AhoCorasick _text;
    private readonly AhoCorasick _base64;
    private readonly SearchValues<byte>[] _skip;
    private readonly SearchValues<byte> _base64Skip;

    public RealValueMatcher(IEnumerable<KnownValue> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var text = new List<(byte[], int)>();
        var base64 = new List<(byte[], int)>();
        foreach (var value in values)
        {
            if (value.Value.IsEmpty)
            {
                continue;
            }

            text.Add((value.Value.ToArray(), value.Owner));
            foreach (var form in Base64Forms(value.Value.Span))
            {
                base64.Add((form, value.Owner));
            }
        }

        _text = new AhoCorasick(text);
        _base64 = new AhoCorasick(base64);
        var first = new List<byte>();
        for (var b = 0; b < 256; b++)
        {
            if (_text.FirstBytes.Contains((byte)b))
            {
                first.Add((byte)b);
            }
        }

        _skip =
        [
            _text.FirstBytes,
            SearchValues.Create([.. first, (byte)'\\']),
            SearchValues.Create([.. first, (byte)'\\']),
            SearchValues.Create([.. first, (byte)'%', (byte)'+']),
            SearchValues.Create([.. first, (byte)'&']),
        ];
        var base64First = new List<byte>(EscapeStarts);
        for (var b = 0; b < 256; b++)
        {
            if (_base64.FirstBytes.Contains((byte)b))
            {
                base64First.Add((byte)b);
            }
        }

        _base64Skip = SearchValues.Create([.. base64First]);
        var window = 0;
        foreach (var view in TextViews)
        {
            window = Math.Max(window, _text.MaxLength * EscapeDecoder.Expansion(view));
        }

        // Two levels: a byte of the value comes from at most 12 bytes of the inner escaping, each of which
        // from at most 12 input bytes (HTML &#x0000005C;; JSON \u005C is 6, %5C 3).
        window = Math.Max(window, _text.MaxLength * 12 * 12);

        // Base64 under one escaping: each character (and each of at most two line breaks after it) from at most
        // 12 input bytes.
        Window = Math.Max(window, _base64.MaxLength * Base64UnitExpansion * 3);
        IsEmpty = _text.IsEmpty;
    }

    /// <summary>A matcher that finds nothing.</summary>
    public static RealValueMatcher Empty { get; } = new([]);

    public bool IsEmpty { get; }

    /// <summary>
    /// The longest input any match can span. A streaming caller holds back <c>Window - 1</c> bytes
    /// between chunks: every match that starts before that tail is then entirely in view.
    /// </summary>
    public int Window { get; }

    /// <summary>True when some value occurs in the data; <paramref name="owner"/> is whose.</summary>
    public bool TryFindFirst(ReadOnlySpan<byte> data, out int owner)
    {
        owner = -1;
        if (IsEmpty || data.IsEmpty)
        {
            return false;
        }

        var list = new List<ValueMatch>();
        var pending = data.Length;
        for (var v = 0; v < TextViews.Length; v++)
        {
            if (ScanText(TextViews[v], _skip[v], data, list, stopAtFirst: true, null, ref pending))
            {
                owner = list[0].Owner;
                return true;
            }
        }

        if (ScanNested(data, list, stopAtFirst: true, ref pending))
        {
            owner = list[0].Owner;
            return true;
        }

        if (ScanBase64(data, list, stopAtFirst: true, ref pending))
        {
            owner = list[0].Owner;
            return true;
        }

        return false;
    }

    /// <summary>Every range carrying a value, sorted, overlapping matches merged (owner of the leftmost).</summary>
    public List<ValueMatch> FindAll(ReadOnlySpan<byte> data) => FindAll(data, out _);

    /// <summary>
    /// As <see cref="FindAll(ReadOnlySpan{byte})"/>; <paramref name="pendingFrom"/> is the earliest
    /// position from which a value could still be completed by more input (the start of the longest
    /// suffix that begins some form of some value, or of an unfinished escape); <c>data.Length</c> when
    /// none. A streaming caller holds back only the bytes from there.
    /// </summary>
    public List<ValueMatch> FindAll(ReadOnlySpan<byte> data, out int pendingFrom)
    {
        var list = new List<ValueMatch>();
        pendingFrom = data.Length;
        if (IsEmpty || data.IsEmpty)
        {
            return list;
        }

        for (var v = 0; v < TextViews.Length; v++)
        {
            ScanText(TextViews[v], _skip[v], data, list, stopAtFirst: false, null, ref pendingFrom);
        }

        ScanNested(data, list, stopAtFirst: false, ref pendingFrom);
        ScanBase64(data, list, stopAtFirst: false, ref pendingFrom);
        return Merge(list);
    }

    /// <summary>Replaces each match by <c>replacements[owner]</c>; null when nothing matched.</summary>
    public byte[]? Replace(ReadOnlySpan<byte> data, IReadOnlyList<byte[]> replacements)
    {
        ArgumentNullException.ThrowIfNull(replacements);
        var matches = FindAll(data);
        if (matches.Count == 0)
        {
            return null;
        }

        var output = new ArrayBufferWriter<byte>(data.Length + 64);
        var copied = 0;
        foreach (var match in matches)
        {
            output.Write(data[copied..match.Start]);
            output.Write(replacements[match.Owner]);
            copied = match.End;
        }

        output.Write(data[copied..]);
        return output.WrittenSpan.ToArray();
    }

    private static List<ValueMatch> Merge(List<ValueMatch> list)
    {
        if (list.Count <= 1)
        {
            return list;
        }

        list.Sort(static (x, y) => x.Start != y.Start ? x.Start.CompareTo(y.Start) : y.Length.CompareTo(x.Length));
        var merged = new List<ValueMatch>(list.Count);
        var current = list[0];
        for (var i = 1; i < list.Count; i++)
        {
            var next = list[i];
            if (next.Start < current.End)
            {
                if (next.End > current.End)
                {
                    current = current with { Length = next.End - current.Start };
                }
            }
            else
            {
                merged.Add(current);
                current = next;
            }
        }

        merged.Add(current);
        return merged;
    }

    /// <summary>
    /// Two-level escaping: every composition of two of the escaping views (JSON, JSON with per-byte <c>\u00XX</c>,
    /// percent-encoding, HTML references), the same one twice included: JSON inside a JSON string (<c>\\\"</c>,
    /// <c>\\u00c3</c>), percent-encoding applied twice (<c>%2522</c>), JSON then percent-encoded (<c>%5C%22</c>),
    /// HTML then JSON (<c>\u0026amp;</c>)... The input is decoded once per outer view into a buffer (decoding never
    /// grows it) with each decoded byte's source range, and each inner view runs over that buffer: at most 4 + 16
    /// linear passes. An outer view is skipped when the input has none of its escapes, an inner view when the
    /// decoded buffer has none of its escape characters.
    /// </summary>
    private bool ScanNested(ReadOnlySpan<byte> data, List<ValueMatch> matches, bool stopAtFirst, ref int pendingFrom)
    {
        var hasJson = data.IndexOf((byte)'\\') >= 0;
        // Percent-encoding counts as the outer level when it has a %XX: an encoder that writes '+' for a space
        // percent-encodes the escape characters of the inner level ('\\' '%' '&') too.
        var hasUrl = data.IndexOf((byte)'%') >= 0;
        var hasHtml = data.IndexOf((byte)'&') >= 0;
        if (!hasJson && !hasUrl && !hasHtml)
        {
            return false;
        }

        var decoded = ArrayPool<byte>.Shared.Rent(data.Length);
        var map = new SourceMap();
        Span<byte> unit = stackalloc byte[4];
        var latin1Escapes = false;
        try
        {
            foreach (var outer in NestedViews)
            {
                var (intro, wanted) = outer switch
                {
                    EscapeView.Json => (EscapeDecoder.JsonIntro, hasJson),
                    EscapeView.JsonLatin1 => (EscapeDecoder.JsonIntro, latin1Escapes),
                    EscapeView.Url => (EscapeDecoder.UrlIntro, hasUrl),
                    _ => (EscapeDecoder.HtmlIntro, hasHtml),
                };
                if (!wanted)
                {
                    continue;
                }

                // An unfinished first-level escape at the end is read as plain bytes here; the open
                // prefix is taken before it (outerLimit) so that the next chunk decodes it whole.
                var rawTail = EscapeDecoder.IncompleteTail(outer, data);
                var outerLimit = int.MaxValue;
                var count = 0;
                var escapes = 0;
                map.Reset();
                for (var i = 0; i < data.Length;)
                {
                    if (i >= rawTail && rawTail >= 0 && outerLimit == int.MaxValue)
                    {
                        outerLimit = count;
                    }

                    // Plain bytes up to the next escape are copied as one run (vectorised search and copy).
                    var next = data[i..].IndexOfAny(intro);
                    var plainEnd = next < 0 ? data.Length : i + next;
                    if (plainEnd > i)
                    {
                        data[i..plainEnd].CopyTo(decoded.AsSpan(count));
                        map.Add(count, i, plain: true);
                        count += plainEnd - i;
                        i = plainEnd;
                        continue;
                    }

                    var n = EscapeDecoder.Decode(outer, data, i, unit, out var length);
                    if (length > 1)
                    {
                        escapes++;

                        // A \u0080-\u00FF escape: the per-byte reading (JsonLatin1) differs from the UTF-16 one.
                        latin1Escapes |= outer == EscapeView.Json && length == 6 && n == 2 && unit[0] is 0xC2 or 0xC3;
                    }

                    unit[..n].CopyTo(decoded.AsSpan(count));
                    map.Add(count, i, plain: false);
                    count += n;
                    i += length;
                }

                map.Seal(count, data.Length);
                if (escapes == 0)
                {
                    continue;
                }

                var view = decoded.AsSpan(0, count);
                var innerJson = view.IndexOf((byte)'\\') >= 0;
                foreach (var inner in NestedViews)
                {
                    var run = inner switch
                    {
                        EscapeView.Json => innerJson,
                        EscapeView.JsonLatin1 => innerJson && view.IndexOf("\\u00"u8) >= 0,
                        EscapeView.Url => view.IndexOfAny((byte)'%', (byte)'+') >= 0,
                        _ => view.IndexOf((byte)'&') >= 0,
                    };
                    if (run && ScanText(inner, _skip[Array.IndexOf(TextViews, inner)], view, matches, stopAtFirst, map, ref pendingFrom, outerLimit))
                    {
                        return true;
                    }
                }
            }

            return false;
        }
        finally
        {
            decoded.AsSpan(0, data.Length).Clear();
            ArrayPool<byte>.Shared.Return(decoded);
            map.Dispose();
        }
    }

    private bool ScanText(EscapeView view, SearchValues<byte> skip, ReadOnlySpan<byte> data, List<ValueMatch> matches, bool stopAtFirst, SourceMap? startMap, ref int pendingFrom, int outerLimit = int.MaxValue)
    {
        var automaton = _text;
        var ringSize = RingSize(automaton.MaxLength);
        var ring = ArrayPool<int>.Shared.Rent(ringSize);
        var mask = ringSize - 1;
        Span<byte> unit = stackalloc byte[4];
        try
        {
            // Where more input could complete an escape: the pending prefix is taken as it stands there,
            // before the unfinished escape is read as plain bytes.
            var tail = EscapeDecoder.IncompleteTail(view, data);
            var limit = Math.Min(tail >= 0 ? tail : data.Length, outerLimit);
            var pendingTaken = false;
            var state = 0;
            long decoded = 0;
            var i = 0;
            while (i < data.Length)
            {
                if (!pendingTaken && i >= limit)
                {
                    pendingTaken = true;
                    pendingFrom = Math.Min(pendingFrom, PendingStart(automaton.Depth(state), decoded, ring, mask, limit, data.Length, startMap));
                }

                if (state == 0)
                {
                    var next = data[i..].IndexOfAny(skip);
                    if (next < 0)
                    {
                        break;
                    }

                    i += next;
                    if (!pendingTaken && i >= limit)
                    {
                        pendingTaken = true;
                        pendingFrom = Math.Min(pendingFrom, PendingStart(0, decoded, ring, mask, limit, data.Length, startMap));
                    }
                }

                var count = EscapeDecoder.Decode(view, data, i, unit, out var length);
                if (!pendingTaken && i + length > limit)
                {
                    // This unit reaches into the unfinished tail: it may read differently with more input.
                    pendingTaken = true;
                    pendingFrom = Math.Min(pendingFrom, PendingStart(automaton.Depth(state), decoded, ring, mask, i, data.Length, startMap));
                }

                for (var k = 0; k < count; k++)
                {
                    ring[(int)(decoded & mask)] = i;
                    decoded++;
                    state = automaton.Step(state, unit[k]);
                    var found = automaton.OutputLength(state);
                    if (found > 0)
                    {
                        var start = ring[(int)((decoded - found) & mask)];
                        var end = i + length;
                        if (startMap is not null)
                        {
                            // A decoded unit ends where the next one starts (startMap has one entry past the end).
                            start = startMap.Source(start);
                            end = startMap.Source(end);
                        }

                        matches.Add(new ValueMatch(start, end - start, automaton.OutputOwner(state)));
                        if (stopAtFirst)
                        {
                            return true;
                        }
                    }
                }

                i += length;
            }

            if (!pendingTaken)
            {
                pendingFrom = Math.Min(pendingFrom, PendingStart(i >= data.Length ? automaton.Depth(state) : 0, decoded, ring, mask, limit, data.Length, startMap));
            }

            return false;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(ring);
        }
    }

    /// <summary>
    /// The input position from which a value could still complete: the start of the open prefix
    /// (<paramref name="depth"/> decoded bytes back), else the unfinished escape at <paramref name="limit"/>.
    /// </summary>
    private static int PendingStart(int depth, long decoded, int[] ring, int mask, int limit, int length, SourceMap? startMap)
    {
        var from = depth > 0 ? ring[(int)((decoded - depth) & mask)] : limit;
        if (from >= length)
        {
            return int.MaxValue;
        }

        return startMap is null ? from : startMap.Source(from);
    }

    /// <summary>
    /// Base64 forms, seeing through single line breaks (at most two CR/LF bytes in a row) and through one level of
    /// escaping: a JSON escape (<c>\n</c>, <c>\/</c>, <c>\u002B</c>), a percent-escape (<c>%2B</c>, <c>%0A</c>) or an
    /// HTML reference (<c>&amp;#43;</c>) that stands for one base64 character or line break is read as that byte (base64
    /// in a JSON string, a URL or an HTML attribute).
    /// </summary>
    private bool ScanBase64(ReadOnlySpan<byte> data, List<ValueMatch> matches, bool stopAtFirst, ref int pendingFrom)
    {
        var automaton = _base64;
        if (automaton.IsEmpty)
        {
            return false;
        }

        var ringSize = RingSize(automaton.MaxLength);
        var ring = ArrayPool<int>.Shared.Rent(ringSize);
        var mask = ringSize - 1;
        Span<byte> unit = stackalloc byte[4];
        try
        {
            // An unfinished escape at the end may stand for a base64 character once more input comes: the open
            // prefix is taken where it starts (as ScanText does), and it is then read as plain bytes.
            var limit = data.Length;
            foreach (var view in (ReadOnlySpan<EscapeView>)[EscapeView.Json, EscapeView.Url, EscapeView.Html])
            {
                var tail = EscapeDecoder.IncompleteTail(view, data);
                if (tail >= 0)
                {
                    limit = Math.Min(limit, tail);
                }
            }

            var pendingTaken = false;
            var state = 0;
            long decoded = 0;
            var breaks = 0;
            var i = 0;
            while (i < data.Length)
            {
                if (!pendingTaken && i >= limit)
                {
                    pendingTaken = true;
                    var depthAt = automaton.Depth(state);
                    pendingFrom = Math.Min(pendingFrom, depthAt > 0 ? ring[(int)((decoded - depthAt) & mask)] : limit);
                }

                if (state == 0)
                {
                    var next = data[i..].IndexOfAny(_base64Skip);
                    if (next < 0)
                    {
                        break;
                    }

                    i += next;
                    if (!pendingTaken && i >= limit)
                    {
                        pendingTaken = true;
                        pendingFrom = Math.Min(pendingFrom, limit);
                    }
                }

                var b = data[i];
                var length = 1;
                if (b is (byte)'\\' or (byte)'%' or (byte)'&')
                {
                    var view = b == '\\' ? EscapeView.Json : b == '%' ? EscapeView.Url : EscapeView.Html;
                    var n = EscapeDecoder.Decode(view, data, i, unit, out var escapeLength);
                    if (n == 1 && escapeLength > 1 && IsBase64Unit(unit[0]))
                    {
                        b = unit[0];
                        length = escapeLength;
                    }
                }

                if (!pendingTaken && i + length > limit)
                {
                    // This unit reaches into the unfinished tail: it may read differently with more input.
                    pendingTaken = true;
                    var depthHere = automaton.Depth(state);
                    pendingFrom = Math.Min(pendingFrom, depthHere > 0 ? ring[(int)((decoded - depthHere) & mask)] : i);
                }

                if (b is (byte)'\r' or (byte)'\n')
                {
                    if (++breaks > 2)
                    {
                        state = 0;
                    }

                    i += length;
                    continue;
                }

                breaks = 0;
                ring[(int)(decoded & mask)] = i;
                decoded++;
                state = automaton.Step(state, b);
                var found = automaton.OutputLength(state);
                if (found > 0)
                {
                    var start = ring[(int)((decoded - found) & mask)];
                    matches.Add(new ValueMatch(start, i + length - start, automaton.OutputOwner(state)));
                    if (stopAtFirst)
                    {
                        return true;
                    }
                }

                i += length;
            }

            if (!pendingTaken)
            {
                var depth = automaton.Depth(state);
                if (depth > 0)
                {
                    pendingFrom = Math.Min(pendingFrom, ring[(int)((decoded - depth) & mask)]);
                }
                else if (limit < data.Length)
                {
                    pendingFrom = Math.Min(pendingFrom, limit);
                }
            }

            return false;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(ring);
        }
    }

    /// <summary>A byte of the base64 or base64url alphabets, padding, or a line break.</summary>
    private static bool IsBase64Unit(byte b) =>
        b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'+' or (byte)'/' or (byte)'-' or (byte)'_' or (byte)'=' or (byte)'\r' or (byte)'\n';

    private static int RingSize(int maxLength)
    {
        var size = 1;
        while (size < Math.Max(maxLength, 1))
        {
            size <<= 1;
        }

        return size;
    }

    /// <summary>
    /// The base64/base64url forms of a value: the whole encoding (padded and not) and, at each of the
    /// three byte alignments the value can have inside a longer base64 string, the characters that
    /// depend only on the value's bits (its stable core).
    /// </summary>
    internal static List<byte[]> Base64Forms(ReadOnlySpan<byte> value)
    {
        var forms = new List<byte[]>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string form)
        {
            if (form.Length >= MinimumEncodedLength && seen.Add(form))
            {
                forms.Add(System.Text.Encoding.ASCII.GetBytes(form));
                var url = form.Replace('+', '-').Replace('/', '_');
                if (seen.Add(url))
                {
                    forms.Add(System.Text.Encoding.ASCII.GetBytes(url));
                }
            }
        }

        var standard = Convert.ToBase64String(value);
        Add(standard);
        Add(standard.TrimEnd('='));
        var buffer = new byte[value.Length + 5];
        try
        {
            for (var alignment = 0; alignment < 3; alignment++)
            {
                buffer.AsSpan().Clear();
                value.CopyTo(buffer.AsSpan(alignment));
                var encoded = Convert.ToBase64String(buffer, 0, alignment + value.Length + 3);
                var first = ((8 * alignment) + 5) / 6;
                var endExclusive = 8 * (alignment + value.Length) / 6;
                if (endExclusive > first)
                {
                    Add(encoded[first..endExclusive]);
                }
            }
        }
        finally
        {
            Array.Clear(buffer);
        }

        return forms;
    }

    /// <summary>
    /// Where each byte of a once-decoded buffer came from, as runs instead of one entry per byte: a plain run maps
    /// one to one, an escape's decoded bytes all map to the escape's start. Position <c>Length</c> (one past the
    /// end) maps to the end of the source. Lookups (only on a match or a pending prefix) are a binary search.
    /// </summary>
    private sealed class SourceMap : IDisposable
    {
        private int[] _decoded = ArrayPool<int>.Shared.Rent(64);
        private int[] _source = ArrayPool<int>.Shared.Rent(64);
        private bool[] _plain = ArrayPool<bool>.Shared.Rent(64);
        private int _count;
        private int _decodedLength;
        private int _sourceLength;

        public void Reset() => _count = 0;

        public void Add(int decoded, int source, bool plain)
        {
            if (_count == _decoded.Length)
            {
                Grow(ref _decoded);
                Grow(ref _source);
                Grow(ref _plain);
            }

            _decoded[_count] = decoded;
            _source[_count] = source;
            _plain[_count] = plain;
            _count++;
        }

        public void Seal(int decodedLength, int sourceLength)
        {
            _decodedLength = decodedLength;
            _sourceLength = sourceLength;
        }

        public int Source(int decoded)
        {
            if (decoded >= _decodedLength)
            {
                return _sourceLength;
            }

            var run = Array.BinarySearch(_decoded, 0, _count, decoded);
            if (run < 0)
            {
                run = ~run - 1;
            }

            return _plain[run] ? _source[run] + (decoded - _decoded[run]) : _source[run];
        }

        public void Dispose()
        {
            ArrayPool<int>.Shared.Return(_decoded);
            ArrayPool<int>.Shared.Return(_source);
            ArrayPool<bool>.Shared.Return(_plain);
        }

        private void Grow<T>(ref T[] array)
        {
            var larger = ArrayPool<T>.Shared.Rent(array.Length * 2);
            array.AsSpan(0, _count).CopyTo(larger);
            ArrayPool<T>.Shared.Return(array);
            array = larger;
        }
    }
}
