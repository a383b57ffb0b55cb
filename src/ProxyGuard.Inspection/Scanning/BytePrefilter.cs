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
/// Stage 1 is a "Teddy" fingerprint (as in Hyperscan): the first three bytes of every literal are spread over eight
/// buckets, and for each byte offset k a pair of 16-entry nibble tables says which buckets accept a byte there. One
/// AVX2 <c>vpshufb</c> per nibble classifies 32 positions at once; a position is a candidate when some bucket
/// accepts all three bytes. Stage 2 confirms a candidate with a hash of its three bytes and a full comparison.
/// Case-insensitive keywords put both letter cases into the tables, so the input is never folded.
/// </para>
/// Stage 1 never misses a literal (a literal's own bytes set its bucket bit at every offset); it only lets through
/// false candidates, which stage 2 rejects. The scalar loop uses the same tables, so both paths agree bit for bit.
/// </summary>
internal sealed class BytePrefilter
{
    /// <summary>Bytes per fingerprint; every literal is at least this long.</summary>
    public const int FingerprintLength = 3;

    private const int Buckets = 8;
    private const int KeywordFlag = 1 << 24;

    // [offset * 32 + 0..15] = low-nibble table, [offset * 32 + 16..31] = high-nibble table.
    private readonly byte[] _nibbles = new byte[FingerprintLength * 32];
    private readonly Vector256<byte>[] _vectors = new Vector256<byte>[FingerprintLength * 2];
    private readonly int[] _slotKeys;
    private readonly Entry[][] _slotEntries;
    private readonly int _slotShift;

    private BytePrefilter(List<Entry> entries)
    {
        // Distinct fingerprints (keywords folded to lower case), sorted so that similar ones share a bucket.
        var fingerprints = entries
            .Select(e => (Key: FingerprintKey(e.Bytes, e.IgnoreCase), e.IgnoreCase))
            .Distinct()
            .OrderBy(f => f.Key & 0xFF)
            .ThenBy(f => (f.Key >> 8) & 0xFF)
            .ThenBy(f => (f.Key >> 16) & 0xFF)
            .ToArray();
        var perBucket = (fingerprints.Length + Buckets - 1) / Buckets;
        for (var i = 0; i < fingerprints.Length; i++)
        {
            var bit = (byte)(1 << (i / Math.Max(1, perBucket)));
            var (key, ignoreCase) = fingerprints[i];
            for (var k = 0; k < FingerprintLength; k++)
            {
                var b = (byte)(key >> (8 * k));
                AddByte(k, b, bit);
                if (ignoreCase && IsAsciiLetter(b))
                {
                    AddByte(k, (byte)(b ^ 0x20), bit);
                }
            }
        }

        for (var k = 0; k < FingerprintLength; k++)
        {
            var lo = _nibbles.AsSpan(k * 32, 16);
            var hi = _nibbles.AsSpan((k * 32) + 16, 16);
            _vectors[2 * k] = Vector256.Create(Vector128.Create((ReadOnlySpan<byte>)lo), Vector128.Create((ReadOnlySpan<byte>)lo));
            _vectors[(2 * k) + 1] = Vector256.Create(Vector128.Create((ReadOnlySpan<byte>)hi), Vector128.Create((ReadOnlySpan<byte>)hi));
        }

        // Stage 2: open addressing on the 3-byte key (keywords: folded key | flag).
        var grouped = entries.GroupBy(e => FingerprintKey(e.Bytes, e.IgnoreCase) | (e.IgnoreCase ? KeywordFlag : 0)).ToArray();
        var size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, grouped.Length * 4));
        _slotShift = 32 - BitOperations.Log2((uint)size);
        _slotKeys = new int[size];
        Array.Fill(_slotKeys, -1);
        _slotEntries = new Entry[size][];
        foreach (var group in grouped)
        {
            var slot = Slot(group.Key);
            while (_slotKeys[slot] != -1)
            {
                slot = (slot + 1) & (size - 1);
            }

            _slotKeys[slot] = group.Key;
            _slotEntries[slot] = [.. group];
        }

        HasKeywords = entries.Any(e => e.IgnoreCase);
    }

    public bool HasKeywords { get; }

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
            var lo0 = _vectors[0];
            var hi0 = _vectors[1];
            var lo1 = _vectors[2];
            var hi1 = _vectors[3];
            var lo2 = _vectors[4];
            var hi2 = _vectors[5];

            // Loads at i, i+1, i+2 must stay inside the data: i + 2 + 32 <= length.
            while (i + 34 <= data.Length)
            {
                if (count + 32 > output.Length)
                {
                    from = i;
                    return count;
                }

                var m = Classify(Vector256.LoadUnsafe(ref origin, (nuint)i), lo0, hi0)
                    & Classify(Vector256.LoadUnsafe(ref origin, (nuint)(i + 1)), lo1, hi1)
                    & Classify(Vector256.LoadUnsafe(ref origin, (nuint)(i + 2)), lo2, hi2);
                var bits = ~Vector256.Equals(m, Vector256<byte>.Zero).ExtractMostSignificantBits();
                while (bits != 0)
                {
                    output[count++] = i + BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                }

                i += 32;
            }
        }

        var last = data.Length - FingerprintLength;
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

    /// <summary>Stage 1 for one position, without SIMD (same tables).</summary>
    public bool ScalarAccepts(ReadOnlySpan<byte> data, int i)
    {
        var nibbles = _nibbles;
        var m = 0xFF;
        for (var k = 0; k < FingerprintLength; k++)
        {
            var b = data[i + k];
            m &= nibbles[(k * 32) + (b & 15)] & nibbles[(k * 32) + 16 + (b >> 4)];
        }

        return m != 0;
    }

    /// <summary>Stage 2: the literals whose first three bytes are the ones at <paramref name="i"/> (case-sensitive lookup).</summary>
    public Entry[]? ExactEntries(ReadOnlySpan<byte> data, int i) =>
        Lookup(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16));

    /// <summary>Stage 2 for keywords: the case-insensitive literals whose folded first three bytes match.</summary>
    public Entry[]? KeywordEntries(ReadOnlySpan<byte> data, int i) =>
        Lookup(Fold(data[i]) | (Fold(data[i + 1]) << 8) | (Fold(data[i + 2]) << 16) | KeywordFlag);

    private Entry[]? Lookup(int key)
    {
        var keys = _slotKeys;
        var slot = Slot(key);
        while (true)
        {
            var found = keys[slot];
            if (found == key)
            {
                return _slotEntries[slot];
            }

            if (found == -1)
            {
                return null;
            }

            slot = (slot + 1) & (keys.Length - 1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Slot(int key) => (int)(((uint)key * 2654435761u) >> _slotShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Classify(Vector256<byte> v, Vector256<byte> lo, Vector256<byte> hi)
    {
        var nibble = Vector256.Create((byte)0x0F);
        var low = Avx2.Shuffle(lo, v & nibble);
        var high = Avx2.Shuffle(hi, Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & nibble);
        return low & high;
    }

    private void AddByte(int offset, byte b, byte bit)
    {
        _nibbles[(offset * 32) + (b & 15)] |= bit;
        _nibbles[(offset * 32) + 16 + (b >> 4)] |= bit;
    }

    private static bool IsAsciiLetter(byte b) => (uint)((b | 0x20) - 'a') <= 'z' - 'a';

    private static int Fold(byte b) => IsAsciiLetter(b) ? b | 0x20 : b;

    private static int FingerprintKey(byte[] bytes, bool ignoreCase) => ignoreCase
        ? Fold(bytes[0]) | (Fold(bytes[1]) << 8) | (Fold(bytes[2]) << 16)
        : bytes[0] | (bytes[1] << 8) | (bytes[2] << 16);

    private static void AddEntries(List<Entry> entries, IEnumerable<(string Literal, Detector Detector)> pairs, bool ignoreCase)
    {
        var byLiteral = new Dictionary<string, List<Detector>>(ignoreCase ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        foreach (var (literal, detector) in pairs)
        {
            if (literal.Length == 0)
            {
                continue;
            }

            if (literal.Length < FingerprintLength || literal.Any(c => c > 0xFF) || (ignoreCase && literal.Any(c => c >= 0x80)))
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
            entries.Add(new Entry(Encoding.Latin1.GetBytes(literal), literal.Length, [.. detectors], ignoreCase));
        }
    }

    /// <summary>One literal: its Latin-1 bytes (byte i = char i of the anchor) and the detectors it triggers.</summary>
    internal sealed record Entry(byte[] Bytes, int Length, Detector[] Detectors, bool IgnoreCase)
    {
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
}
