namespace ProxyGuard.Inspection.Decoding;

/// <summary>
/// Undoes JSON string escapes (<c>\uXXXX</c>, <c>\/</c>, <c>\n</c>, …) and URL percent-escapes (and, for form
/// encoding, <c>+</c> as space) while recording, for every output character, where it came from.
/// Percent-escaped bytes become one character each (Latin-1), like bodies do.
/// </summary>
internal static class TextUnescaper
{
    /// <summary>Characters that can occur inside a credential: an escape producing one of these may hide a token.</summary>
    public static bool IsTokenChar(int c) =>
        (uint)c < 128 && (char.IsAsciiLetterOrDigit((char)c) || c is '+' or '/' or '=' or '_' or '-' or '.' or '~' or ':' or '@');

    /// <summary>Characters a window around an escape is widened over.</summary>
    public static bool IsWindowChar(char c) => IsTokenChar(c) || c == '\\' || c == '%';

    /// <summary>
    /// Is the escape starting at <paramref name="i"/> (a <c>\</c> or <c>%</c>) one that may hide part of a token or
    /// the boundary next to one? Escapes of printable ASCII are (serializers only need them for quotes and HTML
    /// characters); <c>\n</c>, <c>\"</c> and escapes of non-ASCII text are not.
    /// Returns the escape length in <paramref name="length"/> (at least 1).
    /// </summary>
    public static bool IsInterestingEscape(ReadOnlySpan<char> text, int i, out int length)
    {
        length = 1;
        if (text[i] == '%')
        {
            if (i + 2 < text.Length && char.IsAsciiHexDigit(text[i + 1]) && char.IsAsciiHexDigit(text[i + 2]))
            {
                length = 3;
                var value = (HexValue(text[i + 1]) << 4) | HexValue(text[i + 2]);
                return value is >= 0x20 and < 0x7F;
            }

            return false;
        }

        if (i + 1 >= text.Length)
        {
            return false;
        }

        var next = text[i + 1];
        length = 2;
        switch (next)
        {
            case '/':
                return true;
            case '\\':
                return i + 2 < text.Length && (text[i + 2] == 'u' || text[i + 2] == '/');
            case 'u':
                if (i + 5 < text.Length && IsHex4(text.Slice(i + 2, 4)))
                {
                    length = 6;
                    var code = Hex4(text.Slice(i + 2, 4));
                    return code is >= 0x20 and < 0x7F;
                }

                return false;
            default:
                return false;
        }
    }

    /// <summary>The same as <see cref="IsInterestingEscape(ReadOnlySpan{char}, int, out int)"/> on bytes (Latin-1: byte i is char i).</summary>
    public static bool IsInterestingEscape(ReadOnlySpan<byte> text, int i, out int length)
    {
        length = 1;
        if (text[i] == '%')
        {
            if (i + 2 < text.Length && char.IsAsciiHexDigit((char)text[i + 1]) && char.IsAsciiHexDigit((char)text[i + 2]))
            {
                length = 3;
                var value = (HexValue((char)text[i + 1]) << 4) | HexValue((char)text[i + 2]);
                return value is >= 0x20 and < 0x7F;
            }

            return false;
        }

        if (i + 1 >= text.Length)
        {
            return false;
        }

        var next = text[i + 1];
        length = 2;
        switch (next)
        {
            case (byte)'/':
                return true;
            case (byte)'\\':
                return i + 2 < text.Length && (text[i + 2] == 'u' || text[i + 2] == '/');
            case (byte)'u':
                if (i + 5 < text.Length && IsHex4(text.Slice(i + 2, 4)))
                {
                    length = 6;
                    var code = Hex4(text.Slice(i + 2, 4));
                    return code is >= 0x20 and < 0x7F;
                }

                return false;
            default:
                return false;
        }
    }

    /// <summary><see cref="IsWindowChar(char)"/> for a byte.</summary>
    public static bool IsWindowChar(byte c) => IsWindowChar((char)c);

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/> (at least as long as the source) and
    /// fills <paramref name="offsets"/> (length destination + 1): offsets[k] is the source index of output char k;
    /// offsets[n] = source length. Returns n.
    /// </summary>
    public static int Unescape(ReadOnlySpan<char> source, Span<char> destination, Span<int> offsets, bool json, bool plusAsSpace)
    {
        var n = 0;
        var i = 0;
        while (i < source.Length)
        {
            var c = source[i];
            offsets[n] = i;
            if (c == '%' && i + 2 < source.Length && char.IsAsciiHexDigit(source[i + 1]) && char.IsAsciiHexDigit(source[i + 2]))
            {
                destination[n++] = (char)((HexValue(source[i + 1]) << 4) | HexValue(source[i + 2]));
                i += 3;
                continue;
            }

            if (c == '+' && plusAsSpace)
            {
                destination[n++] = ' ';
                i++;
                continue;
            }

            if (c == '\\' && json && i + 1 < source.Length)
            {
                var e = source[i + 1];
                char decoded;
                var consumed = 2;
                switch (e)
                {
                    case '"': decoded = '"'; break;
                    case '\\': decoded = '\\'; break;
                    case '/': decoded = '/'; break;
                    case 'b': decoded = '\b'; break;
                    case 'f': decoded = '\f'; break;
                    case 'n': decoded = '\n'; break;
                    case 'r': decoded = '\r'; break;
                    case 't': decoded = '\t'; break;
                    case 'u' when i + 5 < source.Length && IsHex4(source.Slice(i + 2, 4)):
                        decoded = (char)Hex4(source.Slice(i + 2, 4));
                        consumed = 6;
                        break;
                    default:
                        decoded = '\\';
                        consumed = 1;
                        break;
                }

                destination[n++] = decoded;
                i += consumed;
                continue;
            }

            destination[n++] = c;
            i++;
        }

        offsets[n] = source.Length;
        return n;
    }

    public static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static bool IsHex4(ReadOnlySpan<char> s) =>
        char.IsAsciiHexDigit(s[0]) && char.IsAsciiHexDigit(s[1]) && char.IsAsciiHexDigit(s[2]) && char.IsAsciiHexDigit(s[3]);

    private static bool IsHex4(ReadOnlySpan<byte> s) =>
        char.IsAsciiHexDigit((char)s[0]) && char.IsAsciiHexDigit((char)s[1]) && char.IsAsciiHexDigit((char)s[2]) && char.IsAsciiHexDigit((char)s[3]);

    private static int Hex4(ReadOnlySpan<byte> s) =>
        (HexValue((char)s[0]) << 12) | (HexValue((char)s[1]) << 8) | (HexValue((char)s[2]) << 4) | HexValue((char)s[3]);

    private static int Hex4(ReadOnlySpan<char> s) =>
        (HexValue(s[0]) << 12) | (HexValue(s[1]) << 8) | (HexValue(s[2]) << 4) | HexValue(s[3]);
}
