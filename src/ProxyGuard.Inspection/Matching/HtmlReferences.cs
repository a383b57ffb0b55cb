using System.Globalization;
using System.Text;

namespace ProxyGuard.Inspection.Matching;

/// <summary>
/// Decodes one HTML character reference as a browser does (the WHATWG tokenizer, minus its error recovery for code
/// points that are not Unicode scalar values): every named reference that stands for one code point, with its
/// <c>;</c>, and the legacy names without it (longest legacy prefix: <c>&amp;amp</c>, <c>&amp;notit;</c> is
/// <c>¬it;</c>); decimal and hex references with or without <c>;</c> and with any leading zeros, as long as the
/// whole reference is at most <see cref="MaxLength"/> characters. Cost: at most <see cref="MaxLength"/> bytes read per
/// call, no allocation.
/// </summary>
internal static partial class HtmlReferences
{
    /// <summary>The longest reference decoded, <c>&amp;</c> and <c>;</c> included (<c>&amp;CounterClockwiseContourIntegral;</c>).</summary>
    public const int MaxLength = 33;

    private const int MaxName = MaxLength - 2;

    private static readonly Dictionary<string, int> Named = Parse();
    private static readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> NamedLookup = Named.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly HashSet<string> LegacyNames = [.. Legacy.Split(',')];
    private static readonly HashSet<string>.AlternateLookup<ReadOnlySpan<char>> LegacyLookup = LegacyNames.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly int LongestLegacy = LegacyNames.Max(n => n.Length);

    /// <summary>
    /// Decodes the reference at the start of <paramref name="s"/> (which starts with <c>&amp;</c>) into
    /// <paramref name="output"/> (UTF-8, at most 4 bytes); returns the byte count and the input
    /// <paramref name="length"/> it covers, or 0 when it is not a reference.
    /// </summary>
    public static int Decode(ReadOnlySpan<byte> s, Span<byte> output, out int length)
    {
        length = 0;
        if (s.Length < 2)
        {
            return 0;
        }

        int code;
        if (s[1] == '#')
        {
            var hex = s.Length > 2 && (s[2] | 0x20) == 'x';
            var at = hex ? 3 : 2;
            var digitsStart = at;
            code = 0;
            while (at < s.Length)
            {
                var d = hex ? EscapeDecoder.Hex(s[at]) : s[at] is >= (byte)'0' and <= (byte)'9' ? s[at] - '0' : -1;
                if (d < 0)
                {
                    break;
                }

                if (at >= MaxLength - 1)
                {
                    return 0; // longer than any reference read: not decoded
                }

                code = Math.Min((code * (hex ? 16 : 10)) + d, 0x110000);
                at++;
            }

            if (at == digitsStart)
            {
                return 0;
            }

            if (code == 0 || !Rune.IsValid(code))
            {
                return 0;
            }

            length = at < s.Length && s[at] == ';' ? at + 1 : at;
            return new Rune(code).EncodeToUtf8(output);
        }

        var n = 0;
        while (1 + n < s.Length && n < MaxName && IsNameByte(s[1 + n]))
        {
            n++;
        }

        if (n == 0)
        {
            return 0;
        }

        Span<char> name = stackalloc char[MaxName];
        for (var k = 0; k < n; k++)
        {
            name[k] = (char)s[1 + k];
        }

        if (1 + n < s.Length && s[1 + n] == ';' && NamedLookup.TryGetValue(name[..n], out code))
        {
            length = n + 2;
            return new Rune(code).EncodeToUtf8(output);
        }

        for (var l = Math.Min(n, LongestLegacy); l >= 2; l--)
        {
            if (LegacyLookup.Contains(name[..l]) && NamedLookup.TryGetValue(name[..l], out code))
            {
                length = l + 1;
                return new Rune(code).EncodeToUtf8(output);
            }
        }

        return 0;
    }

    /// <summary>True when <paramref name="s"/> (starting with <c>&amp;</c>) could still become a longer reference with more input.</summary>
    public static bool IsOpen(ReadOnlySpan<byte> s)
    {
        if (s.Length >= MaxLength)
        {
            return false;
        }

        for (var k = 1; k < s.Length; k++)
        {
            if (!IsNameByte(s[k]) && !(k == 1 && s[k] == '#'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsNameByte(byte b) => b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9';

    private static Dictionary<string, int> Parse()
    {
        var table = new Dictionary<string, int>(2100, StringComparer.Ordinal);
        foreach (var entry in Table.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            table[entry[..eq]] = int.Parse(entry.AsSpan(eq + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        return table;
    }
}
