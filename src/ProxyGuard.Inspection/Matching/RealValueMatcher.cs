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
/// raw, as UTF-8 and as UTF-16LE/BE (R6-2), also JSON- or <c>.reg</c>-escaped and then written as UTF-16 (R8-1); JSON-escaped (<c>\" \\ \/ \b \f \n \r \t</c>, <c>\uXXXX</c> in either hex case,
/// surrogate pairs, JavaScript <c>\u{...}</c>, CSS <c>\41 </c>, and non-ASCII bytes escaped one by one as <c>\u00XX</c> or
/// octal <c>\ooo</c>), in any mix of escaped and plain characters;
/// percent-encoded (either hex case, <c>+</c> for space, any mix incl. fully encoded, <c>%uXXXX</c>, overlong UTF-8 such as
/// <c>%C1%81</c>);
/// HTML character references as browsers read them (every single-character named reference, legacy names and
/// numbers without <c>;</c>, any leading zeros; at most 33 characters); JavaScript <c>\xXX</c> and <c>\'</c>;
/// quoted-printable;
/// base64 and base64url, padded or not, standalone or inside a larger base64 string at each of the
/// three byte alignments (values of at least 6 bytes), also wrapped by line breaks (CR, LF or CRLF)
/// at any line length, and under one escaping (JSON, percent or HTML escapes standing for base64
/// characters or line breaks); and two levels of escaping (any of the four escaping views over any
/// other or itself: JSON in a JSON string, percent twice, JSON then percent, HTML then JSON...), three levels of
/// one escaping or of three different ones (R6-3), and base64 of the value raw or under one escaping (runs of base64
/// characters, wrapped by line breaks or by spaces after whole groups of 4, decoded at each of the four offsets, every
/// text view run over them), and the same once more inside the decoded bytes: base64 of base64 (R6-1).
/// Cost is linear in the input: one Aho-Corasick automaton per view, one step per byte; the two- and three-level
/// passes add at most 10 decodings and 23 automaton passes. Base64 is decoded at most two levels deep: a decoded run is
/// 3/4 of its characters, so the second level costs at most 4 x 3/4 = 3 times the first level's run collection and
/// 16 decodings of 9/16 of the input (each with the first level's text views): a constant factor of at most about 10
/// over one base64 level, and nothing past a quick probe when the decoded bytes have no long stretch of base64
/// characters.
/// Immutable and thread-safe. Overlapping matches are merged into one range.
/// </summary>
public sealed class RealValueMatcher
{
    /// <summary>Encoded forms shorter than this (base64 cores) are not looked for: too many false hits.</summary>
    public const int MinimumEncodedLength = 8;

    private static readonly EscapeView[] TextViews = [EscapeView.Raw, EscapeView.Json, EscapeView.JsonLatin1, EscapeView.Url, EscapeView.Html, EscapeView.QuotedPrintable];

    /// <summary>The escaping views composed with each other (outer and inner) in the two-level pass; index + 1 in <see cref="TextViews"/>.</summary>
    private static readonly EscapeView[] NestedViews = [EscapeView.Json, EscapeView.JsonLatin1, EscapeView.Url, EscapeView.Html];

    /// <summary>Bytes that start an escape of any view, seen through by the base64 scan.</summary>
    private static readonly byte[] EscapeStarts = "\\%&"u8.ToArray();

    /// <summary>The longest input one base64 character (or a line break) can come from: an HTML reference such as <c>&amp;#x000000002B;</c>.</summary>
    private const int Base64UnitExpansion = HtmlReferences.MaxLength;

    /// <summary>
    /// The streaming window of the forms whose worst-case span grows with the product of several escapings' expansions
    /// (three levels, long HTML references under another escaping, base64 of an escaped value) is capped here; a form
    /// longer than this is matched only when one read holds it whole.
    /// </summary>
    public const int DeepFormWindowCap = 64 * 1024;

    /// <summary>Whitespace units (space, tab, CR, LF, or escapes of them) allowed in a row inside a base64 run.</summary>
    private const int MaxBase64Gap = 4;

    private readonly AhoCorasick _text;
    private readonly AhoCorasick _base64;
    private readonly SearchValues<byte>[] _skip;
    private readonly SearchValues<byte> _base64Skip;
    private readonly SearchValues<byte> _mixedSkip;

    /// <summary>The shortest value (bytes): a base64 run shorter than this cannot hold the base64 of any form.</summary>
    private readonly int _shortest;

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
            foreach (var form in Utf16Forms(value.Value.Span))
            {
                text.Add((form, value.Owner));
            }

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
            SearchValues.Create([.. first, (byte)'=']),
        ];
        _mixedSkip = SearchValues.Create([.. first, .. EscapeStarts]);
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
        window = Math.Max(window, _base64.MaxLength * 12 * 3);

        // The deeper forms (capped): two levels with the longest HTML references, three levels of one escaping
        // (JSON: 12 x 12 x 12 per byte), base64 under one escaping with long references, and base64 (whitespace-wrapped,
        // each character possibly escaped) of a value under one escaping.
        _shortest = int.MaxValue;
        foreach (var (pattern, _) in text)
        {
            _shortest = Math.Min(_shortest, pattern.Length);
        }

        // How many base64 characters can hold the base64 of a value under one escaping.
        var base64TailChars = (((_text.MaxLength * Base64UnitExpansion) + 2) / 3 * 4) + 4;
        long deep = Math.Max((long)_text.MaxLength * Base64UnitExpansion * Base64UnitExpansion, (long)_text.MaxLength * 12 * 12 * 12);

        // Three different escapings stacked (R6-3): each level's escape up to an HTML reference long.
        deep = Math.Max(deep, (long)_text.MaxLength * Base64UnitExpansion * Base64UnitExpansion * Base64UnitExpansion);
        deep = Math.Max(deep, (long)_base64.MaxLength * Base64UnitExpansion * 3);
        deep = Math.Max(deep, (long)base64TailChars * Base64UnitExpansion * (MaxBase64Gap + 1));

        // Base64 of base64 (R6-1): the inner run (as long as the base64 of an escaped value, each character escaped or
        // wrapped) is itself base64-encoded, each outer character escaped or wrapped.
        var innerChars = (long)base64TailChars * Base64UnitExpansion * (MaxBase64Gap + 1);
        deep = Math.Max(deep, (((innerChars + 2) / 3 * 4) + 4) * Base64UnitExpansion * (MaxBase64Gap + 1));
        Window = Math.Max(window, (int)Math.Min(deep, DeepFormWindowCap));
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

        // One scratch list per thread (taken while in use): this runs for every request head.
        var list = t_scratch ?? new List<ValueMatch>();
        t_scratch = null;
        try
        {
            var pending = data.Length;
            var found = false;
            for (var v = 0; v < TextViews.Length && !found; v++)
            {
                found = ScanText(TextViews[v], _skip[v], data, list, stopAtFirst: true, null, ref pending);
            }

            found = found
                || ScanNested(data, list, stopAtFirst: true, ref pending)
                || ScanBase64(data, list, stopAtFirst: true, ref pending)
                || ScanBase64Decoded(data, list, stopAtFirst: true, ref pending);
            if (found)
            {
                owner = list[0].Owner;
            }

            return found;
        }
        finally
        {
            list.Clear();
            t_scratch = list;
        }
    }

    [ThreadStatic]
    private static List<ValueMatch>? t_scratch;

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
        ScanBase64Decoded(data, list, stopAtFirst: false, ref pendingFrom);
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
    /// HTML then JSON (<c>\u0026amp;</c>)... and three levels of one escaping (JSON in JSON in JSON, percent three
    /// times, HTML three times). The input is decoded once per outer view into a buffer (decoding never grows it)
    /// with each decoded byte's source range, and each inner view runs over that buffer; for three levels the buffer
    /// is decoded once more by the same view: at most 4 + 3 decodings and 16 + 4 linear passes. An outer view is
    /// skipped when the input has none of its escapes, an inner view when the decoded buffer has none of its escape
    /// characters.
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
        var again = ArrayPool<byte>.Shared.Rent(data.Length);
        var map = new SourceMap();
        var map2 = new SourceMap(map);
        var latin1Escapes = false;
        try
        {
            foreach (var outer in NestedViews)
            {
                var wanted = outer switch
                {
                    EscapeView.Json => hasJson,
                    EscapeView.JsonLatin1 => latin1Escapes,
                    EscapeView.Url => hasUrl,
                    _ => hasHtml,
                };
                if (!wanted)
                {
                    continue;
                }

                // An unfinished first-level escape at the end is read as plain bytes here; the open
                // prefix is taken before it (outerLimit) so that the next chunk decodes it whole.
                var count = DecodeAll(outer, data, int.MaxValue, decoded, map, out var escapes, out var latin1, out var outerLimit, out var escapedIntro);
                latin1Escapes |= latin1;
                if (escapes == 0)
                {
                    continue;
                }

                var view = decoded.AsSpan(0, count);
                foreach (var inner in NestedViews)
                {
                    if (HasEscapes(inner, view) && ScanText(inner, _skip[Array.IndexOf(TextViews, inner)], view, matches, stopAtFirst, map, ref pendingFrom, outerLimit))
                    {
                        return true;
                    }
                }

                // Three different escapings stacked (R6-3: url(json(html(v))), html(url(json(v)))...): after this outer level,
                // two more read by the mixed view, where \, % and & each start their own escaping (an encoder of an outer
                // level escapes the escape characters of the inner ones). One decoding and one pass, each skipped without
                // an escape to read, and skipped unless this level decoded an escape to one of those characters (the
                // encoder of this level escaped the inner levels' escapes; literal ones are ordinary text or binary).
                if (outer != EscapeView.JsonLatin1 && escapedIntro)
                {
                    var mixed = DecodeAll(EscapeView.Mixed, view, outerLimit, again, map2, out var mixedEscapes, out _, out var mixedLimit, out _);
                    var level2 = again.AsSpan(0, mixed);
                    if (mixedEscapes > 0 && HasEscapes(EscapeView.Mixed, level2)
                        && ScanText(EscapeView.Mixed, _mixedSkip, level2, matches, stopAtFirst, map2, ref pendingFrom, mixedLimit))
                    {
                        return true;
                    }
                }

                // Three levels of the same escaping (JsonLatin1 is read as the innermost level only).
                if (outer == EscapeView.JsonLatin1 || !HasEscapes(outer, view))
                {
                    continue;
                }

                var count2 = DecodeAll(outer, view, outerLimit, again, map2, out var escapes2, out _, out var limit2, out _);
                if (escapes2 == 0)
                {
                    continue;
                }

                var view2 = again.AsSpan(0, count2);
                foreach (var inner in outer == EscapeView.Json ? [EscapeView.Json, EscapeView.JsonLatin1] : (ReadOnlySpan<EscapeView>)[outer])
                {
                    if (HasEscapes(inner, view2) && ScanText(inner, _skip[Array.IndexOf(TextViews, inner)], view2, matches, stopAtFirst, map2, ref pendingFrom, limit2))
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
            again.AsSpan(0, data.Length).Clear();
            ArrayPool<byte>.Shared.Return(decoded);
            ArrayPool<byte>.Shared.Return(again);
            map.Dispose();
            map2.Dispose();
        }
    }

    /// <summary>
    /// The last <c>&amp;</c> of the run of <c>&amp;</c> that starts at <paramref name="i"/>. Every <c>&amp;</c> before it is
    /// followed by another <c>&amp;</c>, so it starts no reference (nor any other escape) and reads as a plain byte: the
    /// loops skip those in one vectorised search instead of decoding at each (fuzz/regressions/scan-slow/ampersands).
    /// </summary>
    private static int LastOfAmpersandRun(ReadOnlySpan<byte> data, int i)
    {
        if (i + 1 >= data.Length || data[i + 1] != '&')
        {
            return i;
        }

        var other = data[(i + 1)..].IndexOfAnyExcept((byte)'&');
        return other < 0 ? data.Length - 1 : i + other;
    }

    /// <summary>True when <paramref name="data"/> has a byte that starts an escape of <paramref name="view"/>.</summary>
    private static bool HasEscapes(EscapeView view, ReadOnlySpan<byte> data) => view switch
    {
        EscapeView.Raw => true,
        EscapeView.Json => data.IndexOf((byte)'\\') >= 0,
        EscapeView.JsonLatin1 => data.IndexOf("\\u00"u8) >= 0 || data.IndexOf("\\x"u8) >= 0 || data.IndexOf("\\u{"u8) >= 0 || HasOctalEscape(data),
        EscapeView.Url => data.IndexOfAny((byte)'%', (byte)'+') >= 0,
        EscapeView.Html => data.IndexOf((byte)'&') >= 0,
        EscapeView.Mixed => data.IndexOfAny(EscapeStarts) >= 0,
        _ => data.IndexOf((byte)'=') >= 0,
    };

    /// <summary>True when a backslash is followed by an octal digit (an escape only the per-byte JSON view reads as octal).</summary>
    private static bool HasOctalEscape(ReadOnlySpan<byte> data)
    {
        for (var at = data.IndexOf((byte)'\\'); at >= 0 && at + 1 < data.Length; at += data[(at + 1)..].IndexOf((byte)'\\') is var next and >= 0 ? next + 1 : data.Length)
        {
            if (data[at + 1] is >= (byte)'0' and <= (byte)'7')
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Decodes all of <paramref name="data"/> by <paramref name="view"/> into <paramref name="decoded"/> (never longer
    /// than the input), recording where each decoded run came from in <paramref name="map"/>. <paramref name="limit"/>
    /// is the decoded position of the earlier of <paramref name="limitIn"/> and an unfinished escape at the end (where
    /// more input could change what is decoded); <see cref="int.MaxValue"/> when neither.
    /// </summary>
    private static int DecodeAll(EscapeView view, ReadOnlySpan<byte> data, int limitIn, Span<byte> decoded, SourceMap map, out int escapes, out bool latin1Escapes, out int limit, out bool escapedIntro)
    {
        var intro = view switch
        {
            EscapeView.Json or EscapeView.JsonLatin1 => EscapeDecoder.JsonIntro,
            EscapeView.Url => EscapeDecoder.UrlIntro,
            EscapeView.Html => EscapeDecoder.HtmlIntro,
            EscapeView.Mixed => EscapeDecoder.MixedIntro,
            _ => EscapeDecoder.QuotedPrintableIntro,
        };
        var rawTail = EscapeDecoder.IncompleteTail(view, limitIn < data.Length ? data[..limitIn] : data);
        var stop = Math.Min(limitIn, rawTail >= 0 ? rawTail : int.MaxValue);
        Span<byte> unit = stackalloc byte[4];
        limit = int.MaxValue;
        latin1Escapes = false;
        escapedIntro = false;
        escapes = 0;
        var count = 0;
        var plainRun = false;
        map.Reset();
        for (var i = 0; i < data.Length;)
        {
            if (i >= stop && limit == int.MaxValue)
            {
                limit = count;
            }

            // Plain bytes up to the next escape (or the limit) are copied as one run (vectorised search and copy).
            var next = data[i..].IndexOfAny(intro);
            var plainEnd = next < 0 ? data.Length : i + next;
            if (i < stop && plainEnd > stop)
            {
                plainEnd = stop;
            }

            if (plainEnd > i)
            {
                data[i..plainEnd].CopyTo(decoded[count..]);
                if (!plainRun)
                {
                    map.Add(count, i, plain: true);
                    plainRun = true;
                }

                count += plainEnd - i;
                i = plainEnd;
                continue;
            }

            if (data[i] == '&' && view is EscapeView.Html or EscapeView.Mixed && LastOfAmpersandRun(data, i) is var lastAmpersand && lastAmpersand > i)
            {
                // A run of '&': all but the last are plain bytes, copied as one plain run (up to the limit).
                var runEnd = i < stop && lastAmpersand > stop ? stop : lastAmpersand;
                if (runEnd > i)
                {
                    data[i..runEnd].CopyTo(decoded[count..]);
                    if (!plainRun)
                    {
                        map.Add(count, i, plain: true);
                        plainRun = true;
                    }

                    count += runEnd - i;
                    i = runEnd;
                    continue;
                }
            }

            var n = EscapeDecoder.Decode(view, data, i, unit, out var length);
            if (limit == int.MaxValue && (i + length > stop || (i + length == stop && EscapeDecoder.OpenEnded(view, data, i, length))))
            {
                // This unit reaches the limit and may read differently with more input.
                limit = count;
            }

            if (length == 1 && n == 1 && unit[0] == data[i])
            {
                // An escape character that starts no escape is a plain byte: it extends the plain run in the map (dense
                // runs of them, such as "%%%%", cost no map entry each).
                decoded[count] = data[i];
                if (!plainRun)
                {
                    map.Add(count, i, plain: true);
                    plainRun = true;
                }

                count++;
                i++;
                continue;
            }

            plainRun = false;

            if (length > 1)
            {
                escapes++;
                escapedIntro |= n == 1 && unit[0] is (byte)'\\' or (byte)'%' or (byte)'&';

                // A \u0080-\u00FF, \x80-\xFF or \u{80}-\u{FF} escape: the per-byte reading (JsonLatin1) differs from the
                // UTF-16 one. (Octal escapes are read per byte as the innermost level only: as an outer level they would
                // make every body with a backslash before a digit, binary included, pay one more decoding.)
                latin1Escapes |= view == EscapeView.Json && length > 2 && n == 2 && unit[0] is 0xC2 or 0xC3;
            }

            unit[..n].CopyTo(decoded[count..]);
            map.Add(count, i, plain: false);
            count += n;
            i += length;
        }

        if (data.Length >= stop && limit == int.MaxValue && stop != int.MaxValue)
        {
            limit = count;
        }

        map.Seal(count, data.Length);
        return count;
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
            // Bytes past outerLimit will read differently with more input: an escape open at that point counts as open.
            var tail = EscapeDecoder.IncompleteTail(view, outerLimit < data.Length ? data[..outerLimit] : data);
            var limit = Math.Min(tail >= 0 ? tail : data.Length, outerLimit);

            // In state 0, a '&' that no value starts with and that is followed by another '&' changes nothing.
            var ampersandPlain = automaton.Step(0, (byte)'&') == 0;
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
                    if (ampersandPlain && data[i] == '&')
                    {
                        i = LastOfAmpersandRun(data, i);
                    }

                    if (!pendingTaken && i >= limit)
                    {
                        pendingTaken = true;
                        pendingFrom = Math.Min(pendingFrom, PendingStart(0, decoded, ring, mask, limit, data.Length, startMap));
                    }
                }

                var count = EscapeDecoder.Decode(view, data, i, unit, out var length);
                if (!pendingTaken && (i + length > limit || (i + length == limit && EscapeDecoder.OpenEnded(view, data, i, length))))
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
                    if (data[i] == '&')
                    {
                        // '&' is no base64 character: in state 0 a run of them changes nothing but the last, which may start a reference.
                        i = LastOfAmpersandRun(data, i);
                    }

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

    /// <summary>
    /// Base64 of a form of the value (raw, or under one escaping: a JWT payload holding it JSON-escaped, OAuth state
    /// holding it percent-encoded, base64 of HTML or quoted-printable text). Runs of base64 characters (either
    /// alphabet) are collected, seeing through escapes (JSON, percent, HTML) that stand for a base64 character or
    /// whitespace and through whitespace (at most <see cref="MaxBase64Gap"/> in a row): CR and LF after any number of
    /// characters (wrapped at any line length), spaces and tabs after whole groups of 4 (wrapped at a multiple of 4, as
    /// encoders do; words of prose mostly are not). A run ends at padding or at any other byte. Runs at least as long as
    /// the shortest value are decoded at each of the four character offsets (one of them is the encoder's alignment,
    /// wherever the run was cut) and every text view runs over the decoded bytes; a match covers the base64 characters
    /// that hold its bits. Cost: one pass to collect the runs, four decodings and at most 6 x 4 automaton passes over
    /// 3/4 of the runs, each linear; bodies without long runs pay the collecting pass only. An unfinished run at the end
    /// holds back the characters that do not complete a byte yet and the open prefix of a form in its decoded bytes.
    /// </summary>
    private bool ScanBase64Decoded(ReadOnlySpan<byte> data, List<ValueMatch> matches, bool stopAtFirst, ref int pendingFrom, bool nested = false)
    {
        if (IsEmpty || data.IsEmpty)
        {
            return false;
        }

        // A run shorter than the base64 of the shortest value cannot carry it: L bytes are 8L bits, spread over at
        // least ceil(8L / 6) characters whatever the alignment (escaped forms of a value are longer still).
        var minRun = (int)Math.Max(MinimumEncodedLength, ((4L * _shortest) + 2) / 3);

        // Every character of a run comes from one or more adjacent input bytes that are base64 characters, escape
        // syntax or the whitespace a run may wrap at (RunBytes). Without minRun such bytes in a row there is no run to
        // decode; binary bodies (uploads) rarely have one. Looking at every minRun-th byte finds any such stretch (it
        // covers one of them). A streaming caller also needs the tail of a run cut by the end of the data, so there
        // the quick answer applies only when the data does not end inside such a stretch.
        if ((stopAtFirst || !RunBytes.Contains(data[^1])) && !HasStretch(data, minRun))
        {
            return false;
        }

        var chars = ArrayPool<byte>.Shared.Rent(data.Length);
        var charSource = ArrayPool<int>.Shared.Rent(data.Length);
        var charEnd = ArrayPool<int>.Shared.Rent(data.Length);
        var decoded = ArrayPool<byte>.Shared.Rent(data.Length + (data.Length / minRun) + 1);
        var runs = new List<(int CharStart, int CharEnd, int SourceStart, int SourceEnd)>();
        var map = new SourceMap();
        Span<byte> unit = stackalloc byte[4];
        try
        {
            // Where more input could complete an escape that may stand for a base64 character.
            var tail = data.Length;
            foreach (var view in (ReadOnlySpan<EscapeView>)[EscapeView.Json, EscapeView.Url, EscapeView.Html])
            {
                var t = EscapeDecoder.IncompleteTail(view, data);
                if (t >= 0)
                {
                    tail = Math.Min(tail, t);
                }
            }

            var count = 0;
            var runStart = -1;
            var pieceStart = 0;
            var gap = 0;
            for (var i = 0; i < data.Length;)
            {
                var b = data[i];
                var length = 1;
                if (b == '&' && runStart < 0)
                {
                    // Outside a run, a run of '&' is skipped to its last, which may start a reference.
                    i = LastOfAmpersandRun(data, i);
                }

                if (b is (byte)'\\' or (byte)'%' or (byte)'&')
                {
                    var view = b == '\\' ? EscapeView.Json : b == '%' ? EscapeView.Url : EscapeView.Html;
                    var n = EscapeDecoder.Decode(view, data, i, unit, out var escapeLength);
                    if (n == 1 && escapeLength > 1)
                    {
                        b = unit[0];
                        length = escapeLength;
                    }
                }

                var value = Base64Value(b);
                if (value >= 0)
                {
                    if (runStart < 0)
                    {
                        runStart = count;
                        pieceStart = count;
                    }
                    else if (gap > 0)
                    {
                        pieceStart = count;
                    }

                    chars[count] = (byte)value;
                    charSource[count] = i;
                    charEnd[count] = i + length;
                    count++;
                    gap = 0;
                }
                else if (runStart >= 0 && i < tail && ++gap <= MaxBase64Gap
                    && (b is (byte)'\r' or (byte)'\n' || (b is (byte)' ' or (byte)'\t' && (count - pieceStart) % 4 == 0)))
                {
                    // Inside a run: line breaks after any line length, spaces and tabs after whole groups of 4.
                }
                else if (runStart >= 0)
                {
                    if (i >= tail)
                    {
                        // The run is cut by an unfinished escape: more input may continue it.
                        break;
                    }

                    if (count - runStart >= minRun)
                    {
                        runs.Add((runStart, count, charSource[runStart], b == '=' ? i + length : charEnd[count - 1]));
                    }
                    else
                    {
                        count = runStart;
                    }

                    runStart = -1;
                    gap = 0;
                }

                i += length;
            }

            var lastOpen = false;
            if (runStart >= 0)
            {
                // A run that reaches the end (or an unfinished escape) may go on in the next chunk: it is decoded as it
                // stands; characters that do not complete a byte yet are held back, and the text views hold back
                // the open prefix of a form in the decoded bytes.
                if (count - runStart >= 2)
                {
                    // Decoded however short: the text views then hold back only an open prefix of a form.
                    runs.Add((runStart, count, charSource[runStart], charEnd[count - 1]));
                    lastOpen = true;
                }

                pendingFrom = Math.Min(pendingFrom, charSource[Math.Max(runStart, count - 3)]);
            }

            if (runs.Count == 0)
            {
                return false;
            }

            for (var offset = 0; offset < 4; offset++)
            {
                var size = 0;
                map.Reset();
                for (var r = 0; r < runs.Count; r++)
                {
                    var run = runs[r];
                    var c = run.CharStart + offset;
                    if (run.CharEnd - c >= 2)
                    {
                        map.AddBase64(size, c, charSource);
                        for (; c + 4 <= run.CharEnd; c += 4)
                        {
                            var v = (chars[c] << 18) | (chars[c + 1] << 12) | (chars[c + 2] << 6) | chars[c + 3];
                            decoded[size++] = (byte)(v >> 16);
                            decoded[size++] = (byte)(v >> 8);
                            decoded[size++] = (byte)v;
                        }

                        var rest = run.CharEnd - c;
                        if (rest >= 2)
                        {
                            var v = (chars[c] << 18) | (chars[c + 1] << 12) | (rest == 3 ? chars[c + 2] << 6 : 0);
                            decoded[size++] = (byte)(v >> 16);
                            if (rest == 3)
                            {
                                decoded[size++] = (byte)(v >> 8);
                            }
                        }
                    }

                    if (r < runs.Count - 1 || !lastOpen)
                    {
                        // A line break (no value holds one) after each run, standing for the run's end: a match
                        // never spans two runs, and one that ends with its run ends where the run does.
                        map.Add(size, run.SourceEnd, plain: false);
                        decoded[size++] = (byte)'\n';
                    }
                }

                map.Seal(size, data.Length);
                var bytes = decoded.AsSpan(0, size);
                for (var v = 0; v < TextViews.Length; v++)
                {
                    var view = TextViews[v];
                    if (!HasEscapes(view, bytes))
                    {
                        continue;
                    }

                    var before = matches.Count;
                    var viewPending = int.MaxValue;
                    var found = ScanText(view, _skip[v], bytes, matches, stopAtFirst, map, ref viewPending);
                    if (viewPending < data.Length && lastOpen && charSource.AsSpan(0, count).BinarySearch(viewPending) is var c and >= 0
                        && c >= runs[^1].CharStart + offset)
                    {
                        // An open prefix in the unfinished run: held back from the start of its group of 4, so that the
                        // next chunk decodes it at the same alignment.
                        var first = runs[^1].CharStart + offset;
                        viewPending = charSource[first + ((c - first) / 4 * 4)];
                    }

                    pendingFrom = Math.Min(pendingFrom, viewPending);
                    for (var m = before; m < matches.Count; m++)
                    {
                        matches[m] = WholeCharacters(matches[m], charSource.AsSpan(0, count), charEnd, runs);
                    }

                    if (found)
                    {
                        return true;
                    }
                }

                // The inner level gets the decoded bytes without the closing line break of a finished last run: an inner
                // match that reaches their end then maps to where that run ends, not to the end of the input.
                if (!nested && (size >= minRun || lastOpen)
                    && ScanBase64Twice(lastOpen ? bytes : bytes[..^1], map, matches, stopAtFirst, ref pendingFrom, lastOpen, charSource.AsSpan(0, count), charEnd, runs, offset))
                {
                    return true;
                }
            }

            return false;
        }
        finally
        {
            chars.AsSpan(0, data.Length).Clear();
            decoded.AsSpan().Clear();
            ArrayPool<byte>.Shared.Return(chars);
            ArrayPool<int>.Shared.Return(charSource);
            ArrayPool<int>.Shared.Return(charEnd);
            ArrayPool<byte>.Shared.Return(decoded);
            map.Dispose();
        }
    }

    /// <summary>
    /// R6-1, base64 of base64 (a Kubernetes Secret manifest served base64-encoded by a contents API): the bytes decoded
    /// from base64 runs at one offset are scanned once more as base64, exactly as the input is (runs collected through
    /// escapes and line breaks, decoded at four offsets, every text view over them), one level deep only. Matches and
    /// the open prefix of an unfinished inner run are mapped back through the outer decoding; an open prefix is held
    /// back from the start of its outer group of 4 (as a text view's is), and only when the outer run is itself
    /// unfinished (otherwise every byte the inner level sees is final).
    /// </summary>
    private bool ScanBase64Twice(ReadOnlySpan<byte> bytes, SourceMap map, List<ValueMatch> matches, bool stopAtFirst, ref int pendingFrom, bool lastOpen,
        ReadOnlySpan<int> charSource, int[] charEnd, List<(int CharStart, int CharEnd, int SourceStart, int SourceEnd)> runs, int offset)
    {
        var inner = new List<ValueMatch>();
        var innerPending = bytes.Length;
        var found = ScanBase64Decoded(bytes, inner, stopAtFirst, ref innerPending, nested: true);
        foreach (var match in inner)
        {
            var start = map.Source(match.Start);
            var end = map.Source(match.End);
            matches.Add(WholeCharacters(new ValueMatch(start, end - start, match.Owner), charSource, charEnd, runs));
        }

        if (lastOpen && innerPending < bytes.Length)
        {
            var held = map.Source(innerPending);
            if (charSource.BinarySearch(held) is var c and >= 0 && c >= runs[^1].CharStart + offset)
            {
                var first = runs[^1].CharStart + offset;
                held = charSource[first + ((c - first) / 4 * 4)];
            }

            pendingFrom = Math.Min(pendingFrom, held);
        }

        return found;
    }

    /// <summary>
    /// A match in decoded base64 starts at the character holding its first bits; its end (the character where the next
    /// byte starts) is widened to take in that character too when it is in the same run (it holds the last bits).
    /// </summary>
    private static ValueMatch WholeCharacters(ValueMatch match, ReadOnlySpan<int> charSource, int[] charEnd, List<(int CharStart, int CharEnd, int SourceStart, int SourceEnd)> runs)
    {
        var last = charSource.BinarySearch(match.End);
        var first = charSource.BinarySearch(match.Start);
        if (last < 0 || first < 0)
        {
            return match;
        }

        foreach (var run in runs)
        {
            if (first >= run.CharStart && first < run.CharEnd)
            {
                return last < run.CharEnd ? match with { Length = charEnd[last] - match.Start } : match;
            }
        }

        return match;
    }

    /// <summary>The 6-bit value of a character of the base64 or base64url alphabet, or -1.</summary>
    /// <summary>The bytes a base64 run can be made of: the base64 and base64url alphabets, '=', escape syntax (JSON, JS,
    /// percent, HTML references, quoted-printable) and the whitespace a run may wrap at.</summary>
    private static readonly SearchValues<byte> RunBytes =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\\%&#; \t\r\n"u8);

    /// <summary>True when <paramref name="data"/> has <paramref name="length"/> or more run bytes in a row.</summary>
    private static bool HasStretch(ReadOnlySpan<byte> data, int length)
    {
        for (var probe = length - 1; probe < data.Length; probe += length)
        {
            if (!RunBytes.Contains(data[probe]))
            {
                continue;
            }

            var start = probe;
            while (start > 0 && RunBytes.Contains(data[start - 1]))
            {
                start--;
            }

            var end = probe + 1;
            while (end < data.Length && end - start < length && RunBytes.Contains(data[end]))
            {
                end++;
            }

            if (end - start >= length)
            {
                return true;
            }
        }

        return false;
    }

    private static int Base64Value(byte b) => b switch
    {
        >= (byte)'A' and <= (byte)'Z' => b - 'A',
        >= (byte)'a' and <= (byte)'z' => b - 'a' + 26,
        >= (byte)'0' and <= (byte)'9' => b - '0' + 52,
        (byte)'+' or (byte)'-' => 62,
        (byte)'/' or (byte)'_' => 63,
        _ => -1,
    };

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
    /// R6-2: the UTF-16 forms of a value that is valid UTF-8 (Windows APIs, PowerShell <c>-EncodedCommand</c>, .NET and Java
    /// serialisations), little- and big-endian, as text patterns: the raw view finds them in the input, the base64 views
    /// in decoded base64 (base64 of UTF-16LE), the JSON view with per-byte escapes. The zero byte of an ASCII character at
    /// either end is left out (it may be the only byte of the form at a chunk's edge, and the two orders then share
    /// their patterns for an ASCII value): a match leaves that one zero byte in place. Nothing for a value of one
    /// character (too short to tell from binary).
    /// R8-1: also the UTF-16 forms of the value's common escaped spellings, when they differ from the value (it holds
    /// <c>"</c>, <c>\</c>, a control or a non-ASCII character): a JSON document or a <c>.reg</c> export saved as UTF-16 has
    /// the escaped text's code units, which no view decodes. The spellings: JSON with the fewest escapes (<c>\" \\</c>,
    /// controls; also a <c>.reg</c> file's <c>\" \\</c>), the same with non-ASCII as <c>\uxxxx</c> (lower and upper hex),
    /// with <c>&lt; &gt; &amp; '</c> as <c>\u003c</c> (JavaScriptSerializer, Windows PowerShell's <c>ConvertTo-Json</c>), and
    /// System.Text.Json's default escaping.
    /// </summary>
    internal static List<byte[]> Utf16Forms(ReadOnlySpan<byte> value)
    {
        var forms = new List<byte[]>();
        var chars = ArrayPool<char>.Shared.Rent(value.Length);
        var escaped = ArrayPool<char>.Shared.Rent((value.Length * 6) + 6);
        try
        {
            if (System.Text.Unicode.Utf8.ToUtf16(value, chars, out _, out var written, replaceInvalidSequences: false) != OperationStatus.Done || written < 2)
            {
                return forms;
            }

            var raw = chars.AsSpan(0, written);
            AddUtf16(forms, raw);
            foreach (var spelling in (ReadOnlySpan<JsonSpelling>)[
                JsonSpelling.Minimal, JsonSpelling.Minimal | JsonSpelling.NonAsciiLower, JsonSpelling.Minimal | JsonSpelling.NonAsciiUpper,
                JsonSpelling.Minimal | JsonSpelling.HtmlLower, JsonSpelling.Minimal | JsonSpelling.HtmlLower | JsonSpelling.NonAsciiLower,
                JsonSpelling.Reg])
            {
                var length = EscapeJson(raw, escaped, spelling);
                if (!escaped.AsSpan(0, length).SequenceEqual(raw))
                {
                    AddUtf16(forms, escaped.AsSpan(0, length));
                }
            }

            if (System.Text.Encodings.Web.JavaScriptEncoder.Default.Encode(raw, escaped, out _, out var encoded) == OperationStatus.Done
                && !escaped.AsSpan(0, encoded).SequenceEqual(raw))
            {
                AddUtf16(forms, escaped.AsSpan(0, encoded));
            }

            return forms;
        }
        finally
        {
            chars.AsSpan(0, value.Length).Clear();
            ArrayPool<char>.Shared.Return(chars);
            escaped.AsSpan(0, (value.Length * 6) + 6).Clear();
            ArrayPool<char>.Shared.Return(escaped);
        }
    }

    /// <summary>The UTF-16LE and UTF-16BE patterns of <paramref name="text"/> (an ASCII end's zero byte left out), deduplicated.</summary>
    private static void AddUtf16(List<byte[]> forms, ReadOnlySpan<char> text)
    {
        foreach (var encoding in (ReadOnlySpan<System.Text.Encoding>)[System.Text.Encoding.Unicode, System.Text.Encoding.BigEndianUnicode])
        {
            var bytes = new byte[encoding.GetByteCount(text)];
            encoding.GetBytes(text, bytes);
            var start = bytes[0] == 0 ? 1 : 0;
            var end = bytes[^1] == 0 ? bytes.Length - 1 : bytes.Length;
            var form = bytes[start..end];
            Array.Clear(bytes);
            if (forms.Exists(f => f.AsSpan().SequenceEqual(form)))
            {
                Array.Clear(form);
                continue;
            }

            forms.Add(form);
        }
    }

    [Flags]
    private enum JsonSpelling
    {
        Minimal = 1,
        NonAsciiLower = 2,
        NonAsciiUpper = 4,
        HtmlLower = 8,
        Reg = 16,
    }

    /// <summary>
    /// R8-1: <paramref name="text"/> escaped as <paramref name="spelling"/> says into <paramref name="destination"/> (at least
    /// six characters per character); returns the length written.
    /// </summary>
    private static int EscapeJson(ReadOnlySpan<char> text, Span<char> destination, JsonSpelling spelling)
    {
        var at = 0;
        foreach (var c in text)
        {
            string? shortForm = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                _ when spelling == JsonSpelling.Reg => null,
                '\b' => "\\b",
                '\f' => "\\f",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ => null,
            };
            if (shortForm is not null)
            {
                shortForm.AsSpan().CopyTo(destination[at..]);
                at += shortForm.Length;
                continue;
            }

            var unicode = spelling != JsonSpelling.Reg && (c < 0x20
                || (c > 0x7E && (spelling & (JsonSpelling.NonAsciiLower | JsonSpelling.NonAsciiUpper)) != 0)
                || ((spelling & JsonSpelling.HtmlLower) != 0 && c is '<' or '>' or '&' or '\''));
            if (!unicode)
            {
                destination[at++] = c;
                continue;
            }

            destination[at++] = '\\';
            destination[at++] = 'u';
            ((int)c).TryFormat(destination[at..], out var digits, (spelling & JsonSpelling.NonAsciiUpper) != 0 ? "X4" : "x4", System.Globalization.CultureInfo.InvariantCulture);
            at += digits;
        }

        return at;
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
    private sealed class SourceMap(SourceMap? parent = null) : IDisposable
    {
        private readonly SourceMap? _parent = parent;
        private int[] _decoded = ArrayPool<int>.Shared.Rent(64);
        private int[] _source = ArrayPool<int>.Shared.Rent(64);
        private bool[] _plain = ArrayPool<bool>.Shared.Rent(64);
        private bool[] _base64 = ArrayPool<bool>.Shared.Rent(64);
        private int[]? _charSource;
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
                Grow(ref _base64);
            }

            _decoded[_count] = decoded;
            _source[_count] = source;
            _plain[_count] = plain;
            _base64[_count] = false;
            _count++;
        }

        /// <summary>
        /// A run of decoded base64: decoded byte <c>d</c> of the run (byte <c>d % 3</c> of group <c>d / 3</c>) maps to the
        /// source of character <c>firstChar + 4 * (d / 3) + d % 3</c> of <paramref name="charSource"/>, the character
        /// that holds its first bits.
        /// </summary>
        public void AddBase64(int decoded, int firstChar, int[] charSource)
        {
            Add(decoded, firstChar, plain: false);
            _base64[_count - 1] = true;
            _charSource = charSource;
        }

        public void Seal(int decodedLength, int sourceLength)
        {
            _decodedLength = decodedLength;
            _sourceLength = sourceLength;
        }

        /// <summary>The position in the original input (through the parent map, when this one maps a decoded buffer).</summary>
        public int Source(int decoded)
        {
            var local = Local(decoded);
            return _parent is null ? local : _parent.Source(local);
        }

        private int Local(int decoded)
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

            if (_base64[run])
            {
                var d = decoded - _decoded[run];
                return _charSource![_source[run] + (4 * (d / 3)) + (d % 3)];
            }

            return _plain[run] ? _source[run] + (decoded - _decoded[run]) : _source[run];
        }

        public void Dispose()
        {
            ArrayPool<int>.Shared.Return(_decoded);
            ArrayPool<int>.Shared.Return(_source);
            ArrayPool<bool>.Shared.Return(_plain);
            ArrayPool<bool>.Shared.Return(_base64);
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
