using System.Buffers;
using System.Text;

namespace ProxyGuard.Inspection.Matching;

/// <summary>The decoded views of the input a real value is looked for in.</summary>
internal enum EscapeView
{
    /// <summary>The bytes as they are.</summary>
    Raw,

    /// <summary>JSON and JavaScript string escapes decoded: <c>\" \\ \/ \b \f \n \r \t \'</c>, <c>\uXXXX</c> (either hex case, surrogate pairs joined) and <c>\xXX</c> as UTF-8.</summary>
    Json,

    /// <summary>As <see cref="Json"/>, but <c>\u0000</c>–<c>\u00FF</c> and <c>\xXX</c> decoded to that one byte (UTF-8 bytes escaped one by one, as Latin-1 or as Python and C write bytes).</summary>
    JsonLatin1,

    /// <summary>Percent-encoding decoded (<c>%XX</c> in either hex case) and <c>+</c> read as a space.</summary>
    Url,

    /// <summary>HTML character references decoded as browsers read them (<see cref="HtmlReferences"/>): every named reference of one code point, the legacy ones also without <c>;</c>, decimal and hex with or without <c>;</c> and any leading zeros, at most 33 characters.</summary>
    Html,

    /// <summary>Quoted-printable (RFC 2045): <c>=XX</c> (either hex case) is that byte, a soft line break (<c>=</c> before CRLF or LF) is nothing.</summary>
    QuotedPrintable,
}

/// <summary>Decodes one unit of an escaped view: a plain byte, or one escape sequence.</summary>
internal static class EscapeDecoder
{
    /// <summary>Bytes that start an escape in each view (beyond the bytes that start a pattern).</summary>
    public static readonly SearchValues<byte> JsonIntro = SearchValues.Create("\\"u8);
    public static readonly SearchValues<byte> UrlIntro = SearchValues.Create("%+"u8);
    public static readonly SearchValues<byte> HtmlIntro = SearchValues.Create("&"u8);
    public static readonly SearchValues<byte> QuotedPrintableIntro = SearchValues.Create("="u8);

    /// <summary>The longest input one decoded byte can come from, per view (the streaming window factor).</summary>
    public static int Expansion(EscapeView view) => view switch
    {
        EscapeView.Raw => 1,
        EscapeView.Url or EscapeView.QuotedPrintable => 3,
        EscapeView.Html => HtmlReferences.MaxLength,
        _ => 12, // JSON: a match may begin at the last byte of a 12-character surrogate pair
    };

    /// <summary>
    /// Decodes the unit at <paramref name="i"/>: writes its bytes into <paramref name="output"/>
    /// (at most 4) and returns how many; <paramref name="length"/> is the input it covers.
    /// An incomplete or invalid escape is one plain byte.
    /// </summary>
    public static int Decode(EscapeView view, ReadOnlySpan<byte> data, int i, Span<byte> output, out int length)
    {
        var b = data[i];
        length = 1;
        switch (view)
        {
            case EscapeView.Json or EscapeView.JsonLatin1 when b == '\\' && i + 1 < data.Length:
                var n = DecodeJson(data[i..], output, view == EscapeView.JsonLatin1, out var jsonLength);
                if (n > 0)
                {
                    length = jsonLength;
                    return n;
                }

                break;
            case EscapeView.Url when b == '%' && i + 2 < data.Length && Hex(data[i + 1]) >= 0 && Hex(data[i + 2]) >= 0:
                output[0] = (byte)((Hex(data[i + 1]) << 4) | Hex(data[i + 2]));
                length = 3;
                return 1;
            case EscapeView.Url when b == '+':
                output[0] = (byte)' ';
                return 1;
            case EscapeView.Html when b == '&':
                var h = HtmlReferences.Decode(data[i..], output, out var htmlLength);
                if (h > 0)
                {
                    length = htmlLength;
                    return h;
                }

                break;
            case EscapeView.QuotedPrintable when b == '=' && i + 2 < data.Length:
                if (Hex(data[i + 1]) >= 0 && Hex(data[i + 2]) >= 0)
                {
                    output[0] = (byte)((Hex(data[i + 1]) << 4) | Hex(data[i + 2]));
                    length = 3;
                    return 1;
                }

                if (data[i + 1] == '\r' && data[i + 2] == '\n')
                {
                    length = 3;
                    return 0;
                }

                if (data[i + 1] == '\n')
                {
                    length = 2;
                    return 0;
                }

                break;
            case EscapeView.QuotedPrintable when b == '=' && i + 1 < data.Length && data[i + 1] == '\n':
                length = 2;
                return 0;
        }

        output[0] = b;
        return 1;
    }

    /// <summary>
    /// Start of the first escape in the last 12 bytes of <paramref name="data"/> that more input could
    /// still complete (a trailing <c>\</c>, <c>\u00</c>, <c>%4</c>, <c>&amp;#x2</c>...), or -1.
    /// </summary>
    public static int IncompleteTail(EscapeView view, ReadOnlySpan<byte> data)
    {
        for (var j = Math.Max(0, data.Length - HtmlReferences.MaxLength); j < data.Length; j++)
        {
            var rest = data.Length - j;
            var b = data[j];
            var incomplete = view switch
            {
                EscapeView.Json or EscapeView.JsonLatin1 when b == '\\' =>
                    rest == 1 || (data[j + 1] == 'u' && (rest < 6 || (rest < 12 && Hex4(data, j + 2) is >= 0xD800 and <= 0xDBFF)))
                        || (data[j + 1] == 'x' && rest < 4),
                EscapeView.Url => b == '%' && rest < 3,
                EscapeView.QuotedPrintable => b == '=' && rest < 3,
                EscapeView.Html => b == '&' && HtmlReferences.IsOpen(data[j..]),
                _ => false,
            };
            if (incomplete)
            {
                return j;
            }
        }

        return -1;
    }

    /// <summary>
    /// True when the unit decoded at <paramref name="i"/> (<paramref name="length"/> bytes) could read differently if
    /// more bytes followed it: an HTML reference without its <c>;</c> (a longer name or more digits may follow).
    /// </summary>
    public static bool OpenEnded(EscapeView view, ReadOnlySpan<byte> data, int i, int length) =>
        view == EscapeView.Html && length > 1 && data[i + length - 1] != ';';

    private static int DecodeJson(ReadOnlySpan<byte> s, Span<byte> output, bool latin1, out int length)
    {
        length = 2;
        switch (s[1])
        {
            case (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'\'':
                output[0] = s[1];
                return 1;
            case (byte)'b':
                output[0] = 8;
                return 1;
            case (byte)'f':
                output[0] = 12;
                return 1;
            case (byte)'n':
                output[0] = 10;
                return 1;
            case (byte)'r':
                output[0] = 13;
                return 1;
            case (byte)'t':
                output[0] = 9;
                return 1;
            case (byte)'x':
                if (s.Length < 4 || Hex(s[2]) < 0 || Hex(s[3]) < 0)
                {
                    return 0;
                }

                length = 4;
                var xx = (Hex(s[2]) << 4) | Hex(s[3]);
                if (latin1 || xx < 0x80)
                {
                    output[0] = (byte)xx;
                    return 1;
                }

                return new Rune(xx).EncodeToUtf8(output);
            case (byte)'u':
                var unit = Hex4(s, 2);
                if (unit < 0)
                {
                    return 0;
                }

                length = 6;
                if (latin1 && unit <= 0xFF)
                {
                    output[0] = (byte)unit;
                    return 1;
                }

                if (unit is >= 0xD800 and <= 0xDBFF)
                {
                    var low = s.Length >= 12 && s[6] == '\\' && s[7] == 'u' ? Hex4(s, 8) : -1;
                    if (low is < 0xDC00 or > 0xDFFF)
                    {
                        return 0;
                    }

                    length = 12;
                    return new Rune(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).EncodeToUtf8(output);
                }

                return unit is >= 0xDC00 and <= 0xDFFF ? 0 : new Rune(unit).EncodeToUtf8(output);
            default:
                return 0;
        }
    }

    private static int Hex4(ReadOnlySpan<byte> s, int at)
    {
        if (s.Length < at + 4)
        {
            return -1;
        }

        var value = 0;
        for (var k = at; k < at + 4; k++)
        {
            var v = Hex(s[k]);
            if (v < 0)
            {
                return -1;
            }

            value = (value << 4) | v;
        }

        return value;
    }

    public static int Hex(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
