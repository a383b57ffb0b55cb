using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Text.Unicode;

namespace ProxyGuard.Inspection.Decoding;

/// <summary>Lenient base64/base64url decoding (both alphabets at once, padding optional, line breaks skipped).</summary>
internal static class Base64
{
    private static readonly sbyte[] _table = BuildTable();

    // The same for every byte value (-1 from 128 up), so byte decoding needs no range check.
    private static readonly sbyte[] _byteTable = [.. _table, .. Enumerable.Repeat((sbyte)-1, 128)];

    public static bool IsRunChar(char c) => c < 128 && _table[c] >= 0;

    /// <summary>Upper bound of the decoded size of <paramref name="length"/> characters.</summary>
    public static int MaxDecodedLength(int length) => (int)(((long)length * 3 / 4) + 3);

    /// <summary>
    /// Decodes until the first character that is neither alphabet nor CR/LF; returns the byte count. One
    /// implementation for text as <c>char</c> and as bytes (Latin-1: byte i is char i); the JIT specialises it per type.
    /// </summary>
    public static int Decode<T>(ReadOnlySpan<T> source, Span<byte> destination)
        where T : unmanaged, IBinaryInteger<T>
    {
        // Fast path: whole quads of alphabet characters, four table lookups and three stores each. It stops at the first
        // quad holding anything else (a line break, padding, the end of the run) with no bits pending, where the
        // character loop below takes over, so the result is the same as decoding character by character.
        var read = 0;
        var written = 0;
        while (read + 4 <= source.Length && written + 3 <= destination.Length)
        {
            int a = Value(source[read]), b = Value(source[read + 1]), c = Value(source[read + 2]), d = Value(source[read + 3]);
            if ((a | b | c | d) < 0)
            {
                break;
            }

            var quad = (a << 18) | (b << 12) | (c << 6) | d;
            destination[written] = (byte)(quad >> 16);
            destination[written + 1] = (byte)(quad >> 8);
            destination[written + 2] = (byte)quad;
            read += 4;
            written += 3;
        }

        var acc = 0;
        var bits = 0;
        foreach (var element in source[read..])
        {
            var c = int.CreateTruncating(element);
            if (c == '\r' || c == '\n')
            {
                continue;
            }

            var value = Value(element);
            if (value < 0)
            {
                break;
            }

            acc = (acc << 6) | value;
            bits += 6;
            if (bits >= 8)
            {
                bits -= 8;
                if (written >= destination.Length)
                {
                    break;
                }

                destination[written++] = (byte)(acc >> bits);
                acc &= (1 << bits) - 1;
            }
        }

        return written;
    }

    /// <summary>The 6-bit value of an alphabet character, -1 for anything else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Value<T>(T element)
        where T : unmanaged, IBinaryInteger<T>
    {
        var c = uint.CreateTruncating(element);
        return c < 256 ? _byteTable[c] : -1;
    }

    /// <summary>Decodes a base64url segment (e.g. a JWT part) into a small buffer; false when it does not fit.</summary>
    public static bool TryDecodeSmall(ReadOnlySpan<char> source, Span<byte> destination, out int written)
    {
        if (MaxDecodedLength(source.Length) > destination.Length + 3)
        {
            written = 0;
            return false;
        }

        written = Decode(source, destination);
        return true;
    }

    /// <summary>
    /// Heuristic: do these bytes look like text (valid UTF-8, almost no control characters, some letters)?
    /// </summary>
    public static bool LooksLikeText(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 4)
        {
            return false;
        }

        var controls = 0;
        var alnum = 0;
        var i = 0;
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 16 <= bytes.Length; i += 16)
            {
                var v = Vector128.Create(bytes.Slice(i, 16));
                var control = (Vector128.LessThan(v, Vector128.Create((byte)0x20))
                        & ~Vector128.Equals(v, Vector128.Create((byte)'\t'))
                        & ~Vector128.Equals(v, Vector128.Create((byte)'\n'))
                        & ~Vector128.Equals(v, Vector128.Create((byte)'\r')))
                    | Vector128.Equals(v, Vector128.Create((byte)0x7F));
                var letter = Vector128.LessThanOrEqual((v | Vector128.Create((byte)0x20)) - Vector128.Create((byte)'a'), Vector128.Create((byte)('z' - 'a')));
                var digit = Vector128.LessThanOrEqual(v - Vector128.Create((byte)'0'), Vector128.Create((byte)9));
                controls += BitOperations.PopCount(control.ExtractMostSignificantBits());
                alnum += BitOperations.PopCount((letter | digit).ExtractMostSignificantBits());
            }
        }

        foreach (var b in bytes[i..])
        {
            if (b < 0x20 && b != (byte)'\t' && b != (byte)'\n' && b != (byte)'\r')
            {
                controls++;
            }
            else if (b == 0x7F)
            {
                controls++;
            }
            else if (b < 128 && char.IsAsciiLetterOrDigit((char)b))
            {
                alnum++;
            }
        }

        if (controls * 16 > bytes.Length || alnum * 4 < bytes.Length)
        {
            return false;
        }

        // A sample may end inside a multi-byte sequence: trim an incomplete tail before validating.
        var trimmed = bytes;
        for (var k = 0; k < 3 && trimmed.Length > 0 && trimmed[^1] >= 0x80; k++)
        {
            trimmed = trimmed[..^1];
        }

        return Utf8.IsValid(trimmed);
    }

    private static sbyte[] BuildTable()
    {
        var table = new sbyte[128];
        Array.Fill(table, (sbyte)-1);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        for (var i = 0; i < alphabet.Length; i++)
        {
            table[alphabet[i]] = (sbyte)i;
        }

        table['+'] = 62;
        table['-'] = 62;
        table['/'] = 63;
        table['_'] = 63;
        return table;
    }
}
