using System.Numerics;

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
    public static bool IsWindowChar(int c) => IsTokenChar(c) || c == '\\' || c == '%';

    /// <summary>
    /// Is the escape starting at <paramref name="i"/> (a <c>\</c> or <c>%</c>) one that may hide part of a token or
    /// the boundary next to one? Escapes of printable ASCII are (serializers only need them for quotes and HTML
    /// characters); <c>\n</c>, <c>\"</c> and escapes of non-ASCII text are not.
    /// Returns the escape length in <paramref name="length"/> (at least 1). One implementation for text as
    /// <c>char</c> and as bytes (Latin-1: byte i is char i).
    /// </summary>
    public static bool IsInterestingEscape<T>(ReadOnlySpan<T> text, int i, out int length)
        where T : unmanaged, IBinaryInteger<T>
    {
        length = 1;
        if (At(text, i) == '%')
        {
            if (i + 2 < text.Length && IsHex(At(text, i + 1)) && IsHex(At(text, i + 2)))
            {
                length = 3;
                var value = (HexValue(At(text, i + 1)) << 4) | HexValue(At(text, i + 2));
                return value is >= 0x20 and < 0x7F;
            }

            return false;
        }

        if (i + 1 >= text.Length)
        {
            return false;
        }

        var next = At(text, i + 1);
        length = 2;
        switch (next)
        {
            case '/':
                return true;
            case '\\':
                return i + 2 < text.Length && (At(text, i + 2) == 'u' || At(text, i + 2) == '/');
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

    public static int HexValue(int c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static bool IsHex(int c) => (uint)c < 128 && char.IsAsciiHexDigit((char)c);

    private static int At<T>(ReadOnlySpan<T> text, int i)
        where T : unmanaged, IBinaryInteger<T> => int.CreateTruncating(text[i]);

    private static bool IsHex4<T>(ReadOnlySpan<T> s)
        where T : unmanaged, IBinaryInteger<T> => IsHex(At(s, 0)) && IsHex(At(s, 1)) && IsHex(At(s, 2)) && IsHex(At(s, 3));

    private static int Hex4<T>(ReadOnlySpan<T> s)
        where T : unmanaged, IBinaryInteger<T> =>
        (HexValue(At(s, 0)) << 12) | (HexValue(At(s, 1)) << 8) | (HexValue(At(s, 2)) << 4) | HexValue(At(s, 3));
}
