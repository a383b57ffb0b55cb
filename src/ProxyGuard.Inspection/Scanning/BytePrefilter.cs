// Over 400 lines: the SIMD prefilter's tables and its vector loops are kept in one type so the JIT inlines the hot
// loop with its tables at hand; its throughput is the scanner's (docs/performance-scanner.md).
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// The byte-level prefilter for bodies: every case-sensitive anchor and case-insensitive keyword of the enabled
/// detectors, matched directly on the (UTF-8 / Latin-1) body bytes without widening them to <c>char</c>.
/// <para>
/// Each literal is represented by a <em>window</em> of <see cref="Width"/> consecutive bytes (3 for 3-byte literals),
/// chosen where its bytes are rarest in ordinary text (an <c>_</c>, <c>-</c> or capital letter rather than lower-case
/// letters), so <c>github_pat_</c> is looked for as <c>_pat</c> and not as the <c>gith</c> of every github.com URL.
/// </para>
/// <para>
/// Stage 1 is a "Teddy" fingerprint (as in Hyperscan): the windows are spread over eight buckets, and for each byte
/// offset k a pair of 16-entry nibble tables says which buckets accept a byte there. One AVX2 <c>vpshufb</c> per
/// nibble classifies 32 positions at once; a position is a candidate when some bucket accepts all bytes. Stage 2
/// confirms a candidate by hashing its window bytes and comparing the whole literal. Case-insensitive keywords put
/// both letter cases into the nibble tables, so the input is never folded.
/// </para>
/// Stage 1 never misses a literal (a window's own bytes set its bucket bit at every offset; a 3-byte window accepts
/// any fourth byte); it only lets through false candidates, which stage 2 rejects. The scalar loop (short inputs,
/// the last bytes of an input, machines without AVX2) uses the same tables, so both paths agree bit for bit.
/// </summary>
internal sealed class BytePrefilter
{
    /// <summary>Shortest literal the prefilter accepts.</summary>
    public const int MinLiteral = 3;

    /// <summary>Bytes per window.</summary>
    public const int Width = 4;

    /// <summary>Two planes of eight buckets (one byte of bucket bits per plane).</summary>
    private const int Buckets = 16;

    private const int PlaneSize = Width * 32;

    // English letter frequencies in percent, a..z.
    private static readonly double[] _letters =
    [
        8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.8, 4.0, 2.4, 6.7, 7.5, 1.9, 0.1, 6.0, 6.3, 9.1, 2.8, 1.0, 2.4, 0.15, 2.0, 0.07,
    ];

    private static readonly double[] _frequency = BuildFrequency();

    // [plane * PlaneSize + offset * 32 + 0..15] = low-nibble table, [... + 16..31] = high-nibble table.
    private readonly byte[] _nibbles = new byte[2 * PlaneSize];
    private readonly NibbleTables _tables;
    private readonly ulong[] _seen = new ulong[1024];
    private readonly KeyTable? _exact4;
    private readonly KeyTable? _exact3;
    private readonly KeyTable? _folded4;

    private BytePrefilter(List<Entry> entries)
    {
        // Distinct windows, each into the bucket where it adds the fewest expected false candidates.
        var windows = entries
            .Select(e => (e.Key, e.WindowLength, e.IgnoreCase))
            .Distinct()
            .OrderBy(w => w.WindowLength)
            .ThenBy(w => w.Key)
            .ToArray();
        var buckets = new ushort[Buckets, Width * 2];
        var used = new bool[Buckets];
        foreach (var (key, windowLength, ignoreCase) in windows)
        {
            var masks = new ushort[Width * 2];
            for (var k = 0; k < Width; k++)
            {
                if (k >= windowLength)
                {
                    masks[2 * k] = masks[(2 * k) + 1] = ushort.MaxValue;
                    continue;
                }

                var b = (byte)(key >> (8 * k));
                masks[2 * k] |= (ushort)(1 << (b & 15));
                masks[(2 * k) + 1] |= (ushort)(1 << (b >> 4));
                if (ignoreCase && IsAsciiLetter(b))
                {
                    masks[(2 * k) + 1] |= (ushort)(1 << ((b ^ 0x20) >> 4));
                }
            }

            var best = 0;
            var bestCost = double.MaxValue;
            for (var bucket = 0; bucket < Buckets; bucket++)
            {
                var cost = used[bucket] ? FalseRate(buckets, bucket, masks) - FalseRate(buckets, bucket, null) : FalseRate(null, bucket, masks);
                if (cost < bestCost)
                {
                    (best, bestCost) = (bucket, cost);
                }
            }

            used[best] = true;
            for (var m = 0; m < masks.Length; m++)
            {
                buckets[best, m] |= masks[m];
            }
        }

        for (var bucket = 0; bucket < Buckets; bucket++)
        {
            var bit = (byte)(1 << (bucket % 8));
            var plane = (bucket / 8) * PlaneSize;
            for (var k = 0; k < Width; k++)
            {
                for (var n = 0; n < 16; n++)
                {
                    if ((buckets[bucket, 2 * k] & (1 << n)) != 0)
                    {
                        _nibbles[plane + (k * 32) + n] |= bit;
                    }

                    if ((buckets[bucket, (2 * k) + 1] & (1 << n)) != 0)
                    {
                        _nibbles[plane + (k * 32) + 16 + n] |= bit;
                    }
                }
            }
        }

        for (var t = 0; t < 2 * Width; t++)
        {
            var lo = Vector128.Create((ReadOnlySpan<byte>)_nibbles.AsSpan(t * 32, 16));
            var hi = Vector128.Create((ReadOnlySpan<byte>)_nibbles.AsSpan((t * 32) + 16, 16));
            _tables[2 * t] = Vector256.Create(lo, lo);
            _tables[(2 * t) + 1] = Vector256.Create(hi, hi);
        }

        foreach (var entry in entries)
        {
            var probe = entry.IgnoreCase ? entry.Key | 0x20202020 : entry.WindowLength == 3 ? entry.Key & 0xFFFFFF : entry.Key;
            var bit = SeenBit(probe);
            _seen[bit >> 6] |= 1UL << bit;
        }

        _exact4 = KeyTable.Build(entries.Where(e => !e.IgnoreCase && e.WindowLength == 4));
        _exact3 = KeyTable.Build(entries.Where(e => !e.IgnoreCase && e.WindowLength == 3));
        _folded4 = KeyTable.Build(entries.Where(e => e.IgnoreCase));
    }

    /// <summary>Builds the prefilter; null when there is nothing to look for.</summary>
    public static BytePrefilter? Build(IEnumerable<(string Anchor, Detector Detector)> anchors, IEnumerable<(string Keyword, Detector Detector)> keywords)
    {
        var entries = new List<Entry>();
        AddEntries(entries, anchors, ignoreCase: false);
        AddEntries(entries, keywords, ignoreCase: true);
        return entries.Count == 0 ? null : new BytePrefilter(entries);
    }

    /// <summary>
    /// Stage 1: appends the positions at or after <paramref name="from"/> where some literal may start to
    /// <paramref name="output"/> (at least 32 long) and returns how many; advances <paramref name="from"/> to the first
    /// position not examined yet (the data length when the data is done).
    /// </summary>
    public int Collect(ReadOnlySpan<byte> data, ref int from, Span<int> output)
    {
        var count = 0;
        var i = from;
        if (Avx2.IsSupported)
        {
            ref var origin = ref MemoryMarshal.GetReference(data);
            ref readonly var t = ref _tables;
            var (t0, t1, t2, t3, t4, t5, t6, t7) = (t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
            var (t8, t9, t10, t11, t12, t13, t14, t15) = (t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]);

            // Loads at i .. i+3 must stay inside the data: i + 3 + 32 <= length. The positions after that which still
            // have four bytes (at most 31) get one more step on a zero-padded copy, keeping only those positions, so a
            // short input (a decoded base64 run, say) is not checked byte by byte either.
            Span<byte> padded = stackalloc byte[64];
            while (i + Width <= data.Length)
            {
                if (count + 32 > output.Length)
                {
                    from = i;
                    return count;
                }

                scoped ref var source = ref origin;
                var at = i;
                var keep = uint.MaxValue;
                if (i + 35 > data.Length)
                {
                    padded.Clear();
                    data[i..].CopyTo(padded);
                    source = ref MemoryMarshal.GetReference(padded);
                    at = 0;
                    keep = (uint)((1UL << (data.Length - Width + 1 - i)) - 1);
                }

                var v0 = Vector256.LoadUnsafe(ref source, (nuint)at);
                var v1 = Vector256.LoadUnsafe(ref source, (nuint)(at + 1));
                var v2 = Vector256.LoadUnsafe(ref source, (nuint)(at + 2));
                var v3 = Vector256.LoadUnsafe(ref source, (nuint)(at + 3));
                var nibble = Vector256.Create((byte)0x0F);
                var l0 = v0 & nibble;
                var h0 = Vector256.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & nibble;
                var l1 = v1 & nibble;
                var h1 = Vector256.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & nibble;
                var l2 = v2 & nibble;
                var h2 = Vector256.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & nibble;
                var l3 = v3 & nibble;
                var h3 = Vector256.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & nibble;
                var a = Avx2.Shuffle(t0, l0) & Avx2.Shuffle(t1, h0)
                    & Avx2.Shuffle(t2, l1) & Avx2.Shuffle(t3, h1)
                    & Avx2.Shuffle(t4, l2) & Avx2.Shuffle(t5, h2)
                    & Avx2.Shuffle(t6, l3) & Avx2.Shuffle(t7, h3);
                var b = Avx2.Shuffle(t8, l0) & Avx2.Shuffle(t9, h0)
                    & Avx2.Shuffle(t10, l1) & Avx2.Shuffle(t11, h1)
                    & Avx2.Shuffle(t12, l2) & Avx2.Shuffle(t13, h2)
                    & Avx2.Shuffle(t14, l3) & Avx2.Shuffle(t15, h3);
                var m = a | b;
                var bits = ~Vector256.Equals(m, Vector256<byte>.Zero).ExtractMostSignificantBits() & keep;
                while (bits != 0)
                {
                    output[count++] = i + BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                }

                i = keep == uint.MaxValue ? i + 32 : data.Length - Width + 1;
            }
        }

        var last = data.Length - MinLiteral;
        for (; i <= last; i++)
        {
            if (count == output.Length)
            {
                from = i;
                return count;
            }

            if (ScalarAccepts(data, i))
            {
                output[count++] = i;
            }
        }

        from = data.Length;
        return count;
    }

    /// <summary>Stage 1 for one position, without SIMD (same tables); bytes past the end accept every bucket.</summary>
    public bool ScalarAccepts(ReadOnlySpan<byte> data, int i)
    {
        var nibbles = _nibbles;
        var a = 0xFF;
        var c = 0xFF;
        var width = Math.Min(Width, data.Length - i);
        for (var k = 0; k < width; k++)
        {
            var b = data[i + k];
            a &= nibbles[(k * 32) + (b & 15)] & nibbles[(k * 32) + 16 + (b >> 4)];
            c &= nibbles[PlaneSize + (k * 32) + (b & 15)] & nibbles[PlaneSize + (k * 32) + 16 + (b >> 4)];
        }

        return (a | c) != 0;
    }

    /// <summary>The 16 shuffle tables of stage 1 (plane, offset, low/high nibble), inline so indexing needs no bounds check.</summary>
    [InlineArray(2 * Width * 2)]
    private struct NibbleTables
    {
        private Vector256<byte> _element;
    }

    /// <summary>Number of stage-2 tables (<see cref="Lookup"/>).</summary>
    public const int Tables = 3;

    /// <summary>
    /// Stage 2: the literals whose window, looked up in table <paramref name="table"/> (exact 4-byte, exact 3-byte,
    /// folded 4-byte), is the bytes at candidate <paramref name="i"/>. A literal then starts at i - its offset, where
    /// <see cref="Entry.MatchesAt"/> confirms it in full.
    /// </summary>
    public Entry[]? Lookup(ReadOnlySpan<byte> data, int i, int table)
    {
        var rest = data.Length - i;
        switch (table)
        {
            case 0 when rest >= 4 && _exact4 is not null:
                return _exact4.Find(Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref MemoryMarshal.GetReference(data), i)));
            case 1 when rest >= 3 && _exact3 is not null:
                return _exact3.Find(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16));
            case 2 when rest >= 4 && _folded4 is not null:
                return _folded4.Find(FoldWord(Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref MemoryMarshal.GetReference(data), i))));
            default:
                return null;
        }
    }

    /// <summary>
    /// A quick stage-2 reject for a candidate with at least four bytes left: false when no table can hold its window.
    /// One bit per hash of every window (exact 4-byte, the first three bytes for 3-byte windows, and every byte OR 0x20
    /// for keywords, which maps both letter cases of a keyword to one value) in a 64 Kibit map that stays in L1, so the
    /// common false candidate costs three bit tests instead of three table probes.
    /// </summary>
    public bool MayMatch(ReadOnlySpan<byte> data, int i)
    {
        if (data.Length - i < 4)
        {
            return true;
        }

        var word = Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref MemoryMarshal.GetReference(data), i));
        return Seen(word) || Seen(word & 0xFFFFFF) || Seen(word | 0x20202020);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Seen(int probe)
    {
        var bit = SeenBit(probe);
        return (_seen[bit >> 6] & (1UL << bit)) != 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SeenBit(int probe) => (int)(((uint)probe * 2654435761u) >> 16);

    /// <summary>Lower-cases the ASCII letters of four little-endian bytes.</summary>
    private static int FoldWord(int word)
    {
        var folded = 0;
        for (var k = 0; k < 4; k++)
        {
            folded |= Fold((byte)(word >> (8 * k))) << (8 * k);
        }

        return folded;
    }

    /// <summary>
    /// The expected share of positions a bucket accepts (with <paramref name="extra"/> nibble masks added), under a
    /// rough byte-frequency model of text and JSON. A bucket accepts at offset k every byte whose low nibble and high
    /// nibble are both in its sets, so mixing dissimilar windows in one bucket accepts far more than either.
    /// </summary>
    private static double FalseRate(ushort[,]? buckets, int bucket, ushort[]? extra)
    {
        var rate = 1.0;
        for (var k = 0; k < Width; k++)
        {
            var lo = (buckets?[bucket, 2 * k] ?? 0) | (extra?[2 * k] ?? 0);
            var hi = (buckets?[bucket, (2 * k) + 1] ?? 0) | (extra?[(2 * k) + 1] ?? 0);
            var accepted = 0.0;
            for (var b = 0; b < 256; b++)
            {
                if ((lo & (1 << (b & 15))) != 0 && (hi & (1 << (b >> 4))) != 0)
                {
                    accepted += _frequency[b];
                }
            }

            rate *= accepted;
        }

        return rate;
    }

    private static double[] BuildFrequency()
    {
        var weights = new double[256];
        for (var b = 0; b < 256; b++)
        {
            weights[b] = b switch
            {
                >= 'a' and <= 'z' => 4 * 26 * _letters[b - 'a'] / 100,
                ' ' or '"' or ',' or ':' or '.' or '/' => 3,
                >= '0' and <= '9' => 2,
                '_' or '-' => 1,
                >= 'A' and <= 'Z' => 0.6,
                '\n' or '{' or '}' or '[' or ']' or '=' or '&' or '?' or '\\' => 0.3,
                _ => 0.02,
            };
        }

        var total = weights.Sum();
        return [.. weights.Select(w => w / total)];
    }

    private static bool IsAsciiLetter(byte b) => (uint)((b | 0x20) - 'a') <= 'z' - 'a';

    private static int Fold(byte b) => IsAsciiLetter(b) ? b | 0x20 : b;

    private static void AddEntries(List<Entry> entries, IEnumerable<(string Literal, Detector Detector)> pairs, bool ignoreCase)
    {
        var byLiteral = new Dictionary<string, List<Detector>>(ignoreCase ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        foreach (var (literal, detector) in pairs)
        {
            if (literal.Length == 0)
            {
                continue;
            }

            if (literal.Length < (ignoreCase ? Width : MinLiteral) || literal.Any(c => c > 0xFF) || (ignoreCase && literal.Any(c => c >= 0x80)))
            {
                throw new InvalidOperationException($"literal of detector '{detector.Id}' cannot be prefiltered on bytes");
            }

            if (!byLiteral.TryGetValue(literal, out var list))
            {
                list = [];
                byLiteral.Add(literal, list);
            }

            if (!list.Contains(detector))
            {
                list.Add(detector);
            }
        }

        foreach (var (literal, detectors) in byLiteral)
        {
            var bytes = Encoding.Latin1.GetBytes(literal);
            var windowLength = Math.Min(Width, bytes.Length);
            var offset = 0;
            var best = double.MaxValue;
            for (var d = 0; d + windowLength <= bytes.Length; d++)
            {
                // log of the window's expected frequency: the rarest window wins.
                var cost = 0.0;
                for (var k = 0; k < windowLength; k++)
                {
                    var b = bytes[d + k];
                    var frequency = _frequency[b] + (ignoreCase && IsAsciiLetter(b) ? _frequency[b ^ 0x20] : 0);
                    cost += Math.Log(frequency);
                }

                if (cost < best)
                {
                    (best, offset) = (cost, d);
                }
            }

            var key = 0;
            for (var k = 0; k < windowLength; k++)
            {
                key |= (ignoreCase ? Fold(bytes[offset + k]) : bytes[offset + k]) << (8 * k);
            }

            entries.Add(new Entry(bytes, [.. detectors], ignoreCase, offset, windowLength, key));
        }
    }

    /// <summary>
    /// One literal: its Latin-1 bytes (byte i = char i of the anchor), the detectors it triggers, and its window
    /// (<paramref name="WindowLength"/> bytes at <paramref name="Offset"/>, as a little-endian <paramref name="Key"/>,
    /// lower-cased for keywords).
    /// </summary>
    internal sealed record Entry(byte[] Bytes, Detector[] Detectors, bool IgnoreCase, int Offset, int WindowLength, int Key)
    {
        public int Length => Bytes.Length;

        public bool MatchesAt(ReadOnlySpan<byte> data, int i)
        {
            if (data.Length - i < Bytes.Length)
            {
                return false;
            }

            var slice = data.Slice(i, Bytes.Length);
            return IgnoreCase ? Ascii.EqualsIgnoreCase(slice, Bytes) : slice.SequenceEqual(Bytes);
        }
    }

    /// <summary>Open addressing from a window key to the literals with that window.</summary>
    private sealed class KeyTable
    {
        private readonly int[] _keys;
        private readonly Entry[][] _entries;
        private readonly int _shift;

        private KeyTable(IGrouping<int, Entry>[] groups)
        {
            var size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, groups.Length * 4));
            _shift = 32 - BitOperations.Log2((uint)size);
            _keys = new int[size];
            _entries = new Entry[size][];
            foreach (var group in groups)
            {
                var slot = Slot(group.Key);
                while (_entries[slot] is not null)
                {
                    slot = (slot + 1) & (size - 1);
                }

                _keys[slot] = group.Key;
                _entries[slot] = [.. group];
            }
        }

        public static KeyTable? Build(IEnumerable<Entry> entries)
        {
            var groups = entries.GroupBy(e => e.Key).ToArray();
            return groups.Length == 0 ? null : new KeyTable(groups);
        }

        public Entry[]? Find(int key)
        {
            var slot = Slot(key);
            while (true)
            {
                var entries = _entries[slot];
                if (entries is null || _keys[slot] == key)
                {
                    return entries;
                }

                slot = (slot + 1) & (_keys.Length - 1);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private int Slot(int key) => (int)(((uint)key * 2654435761u) >> _shift);
    }
}
