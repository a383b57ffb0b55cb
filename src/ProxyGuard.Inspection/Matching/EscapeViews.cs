using System.Buffers;
using System.Text;

namespace ProxyGuard.Inspection.Matching;

/// <summary>The decoded views of the input a real value is looked for in.</summary>
internal enum EscapeView
{
    /// <summary>The bytes as they are.</summary>
    Raw,

    /// <summary>
    /// JSON and JavaScript string escapes decoded: <c>\" \\ \/ \b \f \n \r \t \'</c>, <c>\uXXXX</c> (either hex case, surrogate
    /// pairs joined), <c>\xXX</c> and <c>\u{X...}</c> (at most 8 hex digits) as UTF-8; and CSS escapes (<c>\41 </c>: 1 to 6 hex
    /// digits, one whitespace after them taken in) as UTF-8 of that code point, except after a lowercase <c>b</c> or
    /// <c>f</c>, which stay JSON's backspace and form feed.
    /// </summary>
    Json,

    /// <summary>
    /// As <see cref="Json"/>, but <c>\u0000</c>–<c>\u00FF</c>, <c>\u{0}</c>–<c>\u{FF}</c> and <c>\xXX</c> decoded to that one byte (UTF-8
    /// bytes escaped one by one, as Latin-1 or as Python and C write bytes), and octal escapes (<c>\101</c>: 1 to 3 octal
    /// digits, at most <c>\377</c>) instead of CSS escapes, also to one byte.
    /// </summary>
    JsonLatin1,

    /// <summary>
    /// Percent-encoding decoded (<c>%XX</c> in either hex case) and <c>+</c> read as a space; also <c>%uXXXX</c> (surrogate
    /// pairs joined) as UTF-8, and overlong UTF-8 sequences of percent-escapes (<c>%C1%81</c>, <c>%E0%81%81</c>) as the
    /// character they stand for.
    /// </summary>
    Url,

    /// <summary>HTML character references decoded as browsers read them (<see cref="HtmlReferences"/>): every named reference of one code point, the legacy ones also without <c>;</c>, decimal and hex with or without <c>;</c> and any leading zeros, at most 33 characters.</summary>
    Html,

    /// <summary>Quoted-printable (RFC 2045): <c>=XX</c> (either hex case) is that byte, a soft line break (<c>=</c> before CRLF or LF) is nothing.</summary>
    QuotedPrintable,

    /// <summary>
    /// Each of <c>\</c>, <c>%</c> and <c>&amp;</c> read as the escape it starts (<see cref="Json"/>, <see cref="Url"/> without <c>+</c>,
    /// <see cref="Html"/>): one level of whichever escaping, for three different escapings stacked.
    /// </summary>
    Mixed,
}

/// <summary>Decodes one unit of an escaped view: a plain byte, or one escape sequence.</summary>
internal static class EscapeDecoder
{
    /// <summary>Bytes that start an escape in each view (beyond the bytes that start a pattern).</summary>
    public static readonly SearchValues<byte> JsonIntro = SearchValues.Create("\\"u8);
    public static readonly SearchValues<byte> UrlIntro = SearchValues.Create("%+"u8);
    public static readonly SearchValues<byte> HtmlIntro = SearchValues.Create("&"u8);
    public static readonly SearchValues<byte> QuotedPrintableIntro = SearchValues.Create("="u8);
    public static readonly SearchValues<byte> MixedIntro = SearchValues.Create("\\%&"u8);

    /// <summary>The longest input one decoded byte can come from, per view (the streaming window factor).</summary>
    public static int Expansion(EscapeView view) => view switch
    {
        EscapeView.Raw => 1,
        EscapeView.QuotedPrintable => 3,
        EscapeView.Html or EscapeView.Mixed => HtmlReferences.MaxLength,
        _ => 12, // JSON and URL: a match may begin at the last byte of a 12-character surrogate pair (\uD83D\uDE00, %uD83D%uDE00)
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
            case EscapeView.Url or EscapeView.Mixed when b == '%':
                var u = DecodePercent(data[i..], output, out var percentLength);
                if (u > 0)
                {
                    length = percentLength;
                    return u;
                }

                break;
            case EscapeView.Mixed when b == '\\' && i + 1 < data.Length:
                var m = DecodeJson(data[i..], output, latin1: false, out var mixedLength);
                if (m > 0)
                {
                    length = mixedLength;
                    return m;
                }

                break;
            case EscapeView.Url when b == '+':
                output[0] = (byte)' ';
                return 1;
            case EscapeView.Html or EscapeView.Mixed when b == '&':
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
            if (view == EscapeView.Mixed
                ? IsIncomplete(EscapeView.Json, data, j) || IsIncomplete(EscapeView.Url, data, j) || IsIncomplete(EscapeView.Html, data, j)
                : IsIncomplete(view, data, j))
            {
                return j;
            }
        }

        return -1;
    }

    private static bool IsIncomplete(EscapeView view, ReadOnlySpan<byte> data, int j)
    {
        var rest = data.Length - j;
        var b = data[j];
        return view switch
        {
            EscapeView.Json or EscapeView.JsonLatin1 when b == '\\' =>
                rest == 1 || (data[j + 1] == 'u' && (rest < 6 || (rest < 12 && Hex4(data, j + 2) is >= 0xD800 and <= 0xDBFF)))
                    || (data[j + 1] == 'x' && rest < 4)
                    || (data[j + 1] == 'u' && data[j + 2] == '{' && data[(j + 3)..].IndexOfAnyExcept(HexDigits) < 0 && rest < 12)
                    || (view == EscapeView.Json && data[j + 1] is not (byte)'b' and not (byte)'f' && Hex(data[j + 1]) >= 0 && OpenCss(data[(j + 1)..]))
                    || (view == EscapeView.JsonLatin1 && data[(j + 1)..].IndexOfAnyExcept(OctalDigits) < 0 && rest < (data[j + 1] <= '3' ? 4 : 3)),
            EscapeView.Url => b == '%' && (rest < 3 || OpenPercent(data[j..])),
            EscapeView.QuotedPrintable => b == '=' && rest < 3,
            EscapeView.Html => b == '&' && HtmlReferences.IsOpen(data[j..]),
            _ => false,
        };
    }

    private static readonly SearchValues<byte> HexDigits = SearchValues.Create("0123456789abcdefABCDEF"u8);
    private static readonly SearchValues<byte> OctalDigits = SearchValues.Create("01234567"u8);

    /// <summary>
    /// A CSS escape's digits (<paramref name="s"/> starts after the backslash) that reach the end of the data, or are
    /// followed only by a CR there: more digits, or the whitespace (LF after CR) that ends the escape, may follow.
    /// </summary>
    private static bool OpenCss(ReadOnlySpan<byte> s)
    {
        var digits = s.IndexOfAnyExcept(HexDigits);
        return digits < 0 ? s.Length <= 6 : digits <= 6 && digits == s.Length - 1 && s[^1] == '\r';
    }

    /// <summary>A percent-escape at the end that more input could make longer: <c>%u</c> with fewer than 4 digits, a high surrogate without its low half, an overlong lead without its continuations.</summary>
    private static bool OpenPercent(ReadOnlySpan<byte> s)
    {
        if (s.Length >= 2 && (s[1] == 'u' || s[1] == 'U'))
        {
            var digits = s[2..].IndexOfAnyExcept(HexDigits);
            var n = digits < 0 ? s.Length - 2 : digits;
            if (n < 4)
            {
                return digits < 0;
            }

            var unit = Hex4(s, 2);
            return unit is >= 0xD800 and <= 0xDBFF && s.Length < 12 && (s.Length == 6 || s[6] == '%');
        }

        // %C0/%C1 (2 bytes) or %E0 (3 bytes) followed so far only by continuation escapes: the sequence may go on.
        var lead = s.Length >= 3 && Hex(s[1]) >= 0 && Hex(s[2]) >= 0 ? (Hex(s[1]) << 4) | Hex(s[2]) : -1;
        var total = lead is 0xC0 or 0xC1 ? 6 : lead == 0xE0 ? 9 : 0;
        if (s.Length >= total)
        {
            return false;
        }

        for (var k = 3; k < s.Length; k += 3)
        {
            if (s[k] != '%' || (k + 1 < s.Length && Hex(s[k + 1]) is not (8 or 9 or 10 or 11)) || (k + 2 < s.Length && Hex(s[k + 2]) < 0))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A percent-escape at <c>s[0]</c>: <c>%XX</c>; <c>%uXXXX</c> (a surrogate pair of two of them joined) as UTF-8; an overlong
    /// two- or three-byte UTF-8 sequence of <c>%XX</c> (<c>%C1%81</c>, <c>%E0%81%81</c>: what lenient decoders read as one
    /// character) as that character. Returns the bytes written (0: not an escape).
    /// </summary>
    private static int DecodePercent(ReadOnlySpan<byte> s, Span<byte> output, out int length)
    {
        length = 1;
        if (s.Length >= 6 && (s[1] == 'u' || s[1] == 'U'))
        {
            var unit = Hex4(s, 2);
            if (unit < 0 || unit is >= 0xDC00 and <= 0xDFFF)
            {
                return 0;
            }

            length = 6;
            if (unit is >= 0xD800 and <= 0xDBFF)
            {
                var low = s.Length >= 12 && s[6] == '%' && (s[7] == 'u' || s[7] == 'U') ? Hex4(s, 8) : -1;
                if (low is < 0xDC00 or > 0xDFFF)
                {
                    return 0;
                }

                length = 12;
                return new Rune(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).EncodeToUtf8(output);
            }

            return new Rune(unit).EncodeToUtf8(output);
        }

        var lead = Byte(s, 0);
        if (lead < 0)
        {
            return 0;
        }

        length = 3;
        if (lead is 0xC0 or 0xC1 && Byte(s, 3) is var c1 and >= 0x80 and <= 0xBF)
        {
            // Overlong two-byte form of an ASCII character.
            length = 6;
            output[0] = (byte)(((lead & 0x1F) << 6) | (c1 & 0x3F));
            return 1;
        }

        if (lead == 0xE0 && Byte(s, 3) is var d1 and >= 0x80 and <= 0x9F && Byte(s, 6) is var d2 and >= 0x80 and <= 0xBF)
        {
            // Overlong three-byte form of a character below U+0800.
            length = 9;
            return new Rune(((d1 & 0x3F) << 6) | (d2 & 0x3F)).EncodeToUtf8(output);
        }

        output[0] = (byte)lead;
        return 1;
    }

    /// <summary>The byte of a <c>%XX</c> at <paramref name="at"/>, or -1.</summary>
    private static int Byte(ReadOnlySpan<byte> s, int at) =>
        s.Length >= at + 3 && s[at] == '%' && Hex(s[at + 1]) >= 0 && Hex(s[at + 2]) >= 0 ? (Hex(s[at + 1]) << 4) | Hex(s[at + 2]) : -1;

    /// <summary>
    /// True when the unit decoded at <paramref name="i"/> (<paramref name="length"/> bytes) could read differently if
    /// more bytes followed it: an HTML reference without its <c>;</c> (a longer name or more digits may follow); a CSS
    /// escape with fewer than 6 digits and no whitespace after them, or ending in CR (a digit, the whitespace or an LF
    /// may follow); an octal escape with fewer than 3 digits; a percent-escape of a lead byte of an overlong sequence.
    /// </summary>
    public static bool OpenEnded(EscapeView view, ReadOnlySpan<byte> data, int i, int length)
    {
        if (length <= 1)
        {
            return false;
        }

        var b = data[i];
        var last = data[i + length - 1];
        return (b, view) switch
        {
            ((byte)'&', EscapeView.Html or EscapeView.Mixed) => last != ';',
            ((byte)'\\', EscapeView.Json or EscapeView.Mixed) => data[i + 1] is not (byte)'b' and not (byte)'f' and not (byte)'u' and not (byte)'x'
                && Hex(data[i + 1]) >= 0 && ((length < 8 && Hex(last) >= 0) || last == '\r'),
            ((byte)'\\', EscapeView.JsonLatin1) => data[i + 1] is >= (byte)'0' and <= (byte)'7' && length < (data[i + 1] <= '3' ? 4 : 3),
            ((byte)'%', EscapeView.Url or EscapeView.Mixed) => length == 3 && Hex(data[i + 1]) is 0xC or 0xE && Hex(data[i + 2]) is 0 or 1
                && (data[i + 1] is (byte)'C' or (byte)'c' || Hex(data[i + 2]) == 0),
            _ => false,
        };
    }

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
            case (byte)'u' when s.Length > 3 && s[2] == '{':
                // JavaScript code point escape \u{41} (at most 8 hex digits, leading zeros included).
                var digits = s[3..].IndexOfAnyExcept(HexDigits);
                if (digits is < 1 or > 8 || s[3 + digits] != '}')
                {
                    return 0;
                }

                var point = 0;
                for (var k = 3; k < 3 + digits; k++)
                {
                    point = (point << 4) | Hex(s[k]);
                }

                length = 4 + digits;
                return CodePoint(point, latin1, output);
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
            case >= (byte)'0' and <= (byte)'7' when latin1:
                // Octal escape (C, Python bytes, legacy JavaScript): up to 3 digits, at most \377; one byte.
                var octal = 0;
                var max = s[1] <= '3' ? 3 : 2;
                var count = 0;
                while (count < max && 1 + count < s.Length && s[1 + count] is >= (byte)'0' and <= (byte)'7')
                {
                    octal = (octal << 3) | (s[1 + count] - '0');
                    count++;
                }

                length = 1 + count;
                output[0] = (byte)octal;
                return 1;
            case var h when !latin1 && Hex(h) >= 0:
                // CSS escape: 1 to 6 hex digits, then one optional whitespace (CRLF counts as one).
                var hex = 0;
                var n = 0;
                while (n < 6 && 1 + n < s.Length && Hex(s[1 + n]) >= 0)
                {
                    hex = (hex << 4) | Hex(s[1 + n]);
                    n++;
                }

                length = 1 + n;
                if (length < s.Length && s[length] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\f')
                {
                    length++;
                }
                else if (length < s.Length && s[length] == '\r')
                {
                    length += length + 1 < s.Length && s[length + 1] == '\n' ? 2 : 1;
                }

                return hex == 0 ? 0 : CodePoint(hex, latin1: false, output);
            default:
                return 0;
        }
    }

    /// <summary>A code point as UTF-8 (as one byte when <paramref name="latin1"/> and at most 0xFF); 0 for a surrogate or past U+10FFFF.</summary>
    private static int CodePoint(int point, bool latin1, Span<byte> output)
    {
        if (latin1 && point <= 0xFF)
        {
            output[0] = (byte)point;
            return 1;
        }

        return Rune.IsValid(point) ? new Rune(point).EncodeToUtf8(output) : 0;
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
