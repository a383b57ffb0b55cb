using System.Text.Unicode;

namespace ProxyGuard.Inspection.Decoding;

/// <summary>Lenient base64/base64url decoding (both alphabets at once, padding optional, line breaks skipped).</summary>
internal static class Base64
{
    private static readonly sbyte[] _table = BuildTable();

    public static bool IsRunChar(char c) => c < 128 && _table[c] >= 0;

    /// <summary>Upper bound of the decoded size of <paramref name="length"/> characters.</summary>
    public static int MaxDecodedLength(int length) => (int)(((long)length * 3 / 4) + 3);

    /// <summary>Decodes until the first character that is neither alphabet nor CR/LF; returns the byte count.</summary>
    public static int Decode(ReadOnlySpan<char> source, Span<byte> destination)
    {
        var acc = 0;
        var bits = 0;
        var written = 0;
        foreach (var c in source)
        {
            if (c == '\r' || c == '\n')
            {
                continue;
            }

            if (c >= 128 || _table[c] < 0)
            {
                break;
            }

            acc = (acc << 6) | (byte)_table[c];
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

    /// <summary>The same as <see cref="Decode(ReadOnlySpan{char}, Span{byte})"/> on bytes (Latin-1: byte i is char i).</summary>
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var table = _table;
        var acc = 0;
        var bits = 0;
        var written = 0;
        foreach (var c in source)
        {
            if (c == '\r' || c == '\n')
            {
                continue;
            }

            if (c >= 128 || table[c] < 0)
            {
                break;
            }

            acc = (acc << 6) | (byte)table[c];
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
        foreach (var b in bytes)
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
        for (var i = 0; i < 3 && trimmed.Length > 0 && trimmed[^1] >= 0x80; i++)
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
