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
/// at any line length; and twice-escaped text (JSON in a JSON string, percent-encoding applied twice).
/// Cost is linear in the input: one Aho-Corasick automaton per view, one step per byte.
/// Immutable and thread-safe. Overlapping matches are merged into one range.
/// </summary>
public sealed class RealValueMatcher
{
    /// <summary>Encoded forms shorter than this (base64 cores) are not looked for: too many false hits.</summary>
    public const int MinimumEncodedLength = 8;

    private static readonly EscapeView[] TextViews = [EscapeView.Raw, EscapeView.Json, EscapeView.JsonLatin1, EscapeView.Url, EscapeView.Html];

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
        _base64Skip = _base64.FirstBytes;
        var window = 0;
        foreach (var view in TextViews)
        {
            window = Math.Max(window, _text.MaxLength * EscapeDecoder.Expansion(view));
        }

        // Twice escaped: a byte of the first decoding comes from at most 12 input bytes, each of which
        // from at most 6 (JSON \u005C) or 3 (%25).
        window = Math.Max(window, _text.MaxLength * 12 * 6);

        Window = Math.Max(window, _base64.MaxLength * 3);
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
    /// Twice-escaped text: JSON inside a JSON string (<c>\\\"</c>, <c>\\u00e9</c>: an API that echoes a JSON
    /// request body in a JSON response) and percent-encoding applied twice (<c>%2522</c>). The input is
    /// decoded once into a buffer (decoding never grows it) with each decoded byte's source range, and
    /// the second decoding runs over that buffer. Skipped when the input has no escaped escape.
    /// </summary>
    private bool ScanNested(ReadOnlySpan<byte> data, List<ValueMatch> matches, bool stopAtFirst, ref int pendingFrom)
    {
        // A second-level escape needs an escaped escape character: \\ or \u005C (JSON), %25 (URL).
        var json = data.IndexOf("\\\\"u8) >= 0 || data.IndexOf("\\u005"u8) >= 0;
        var url = data.IndexOf("%25"u8) >= 0;
        if (!json && !url)
        {
            return false;
        }

        var decoded = ArrayPool<byte>.Shared.Rent(data.Length);
        var map = new SourceMap();
        Span<byte> unit = stackalloc byte[4];
        try
        {
            foreach (var (view, skip, intro, wanted) in new[]
                     {
                         (EscapeView.Json, _skip[1], EscapeDecoder.JsonIntro, json),
                         (EscapeView.Url, _skip[3], EscapeDecoder.UrlIntro, url),
                     })
            {
                if (!wanted)
                {
                    continue;
                }

                // An unfinished first-level escape at the end is read as plain bytes here; the open
                // prefix is taken before it (outerLimit) so that the next chunk decodes it whole.
                var rawTail = EscapeDecoder.IncompleteTail(view, data);
                var outerLimit = int.MaxValue;
                var count = 0;
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

                    var n = EscapeDecoder.Decode(view, data, i, unit, out var length);
                    unit[..n].CopyTo(decoded.AsSpan(count));
                    map.Add(count, i, plain: false);
                    count += n;
                    i += length;
                }

                map.Seal(count, data.Length);
                if (ScanText(view, skip, decoded.AsSpan(0, count), matches, stopAtFirst, map, ref pendingFrom, outerLimit))
                {
                    return true;
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

    /// <summary>Base64 forms, seeing through single line breaks (at most two CR/LF bytes in a row).</summary>
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
        try
        {
            var state = 0;
            long decoded = 0;
            var breaks = 0;
            var i = 0;
            while (i < data.Length)
            {
                if (state == 0)
                {
                    var next = data[i..].IndexOfAny(_base64Skip);
                    if (next < 0)
                    {
                        break;
                    }

                    i += next;
                }

                var b = data[i];
                if (b is (byte)'\r' or (byte)'\n')
                {
                    if (++breaks > 2)
                    {
                        state = 0;
                    }

                    i++;
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
                    matches.Add(new ValueMatch(start, i + 1 - start, automaton.OutputOwner(state)));
                    if (stopAtFirst)
                    {
                        return true;
                    }
                }

                i++;
            }

            var depth = automaton.Depth(state);
            if (depth > 0)
            {
                pendingFrom = Math.Min(pendingFrom, ring[(int)((decoded - depth) & mask)]);
            }

            return false;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(ring);
        }
    }

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
