using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace ProxyGuard.Secrets.Tests;

/// <summary>
/// Red team round 6: forms of a real value probed against the real-value matcher after R4-2/R4-3 (base64 runs
/// decoded, three levels of one escaping, JS and quoted-printable views, HTML references as browsers read them).
/// Each form is something a client (or a server, for the leak check) decodes back to the value.
/// </summary>
[Collection(Support.CpuTimedCollection.Name)]
public sealed class RedTeamRound6MatcherTests
{
    private const string Value = "two\"level\\v/al+u\u00e9<&>'x 42z";
    private const string Placeholder = "PG_TWO_AAAABBBBCCCCDDDD";

    private static string Json(string t) => JsonSerializer.Serialize(t)[1..^1];

    private static string Base64(string t) => Convert.ToBase64String(Encoding.UTF8.GetBytes(t));

    private static string Base64(byte[] b) => Convert.ToBase64String(b);

    private static string PerByte(string format) => string.Concat(Encoding.UTF8.GetBytes(Value).Select(b =>
        char.IsAsciiLetterOrDigit((char)b) ? ((char)b).ToString() : string.Format(CultureInfo.InvariantCulture, format, b)));

    private static string PerChar(string format) => string.Concat(Value.Select(c =>
        char.IsAsciiLetterOrDigit(c) ? c.ToString() : string.Format(CultureInfo.InvariantCulture, format, (int)c)));

    private static Substitutor Substitutor() => new(
    [
        new SecretBinding("two", Placeholder, new SecretValue(Value), h => h == "api.bound.test", InHeaders: true, InQuery: true, InBody: true),
    ]);

    /// <summary>Forms the matcher recognised when probed in round 6 (kept as regressions).</summary>
    public static TheoryData<string> HeldForms() =>
    [
        "control-raw", "control-json", "control-base64", "js-hex-upper", "json-of-base64-of-json",
        "percent-of-base64-of-percent", "html-of-base64", "percent-all-lower", "base64-mime-76", "qp-soft-breaks",
    ];

    /// <summary>
    /// Forms round 6 found open, fixed since: R6-1 base64 twice, R6-2 UTF-16 (LE and BE, raw and in base64), R6-3 escapes
    /// of other languages (<c>%u</c>, JS <c>\u{...}</c>, CSS, octal, overlong UTF-8) and three different escapings stacked.
    /// </summary>
    public static TheoryData<string> FixedForms() =>
    [
        "base64-of-base64", "base64url-of-base64", "base64-of-base64-wrapped", "base64-of-json-of-base64", "utf16le-base64",
        "utf16le-raw", "utf16be-raw", "utf16be-base64", "utf16le-json", "percent-u", "js-code-point-braces", "css-escapes",
        "octal-escapes", "overlong-utf8-percent", "mixed-three", "mixed-three-html-url-json",
    ];

    private static string Form(string kind) => kind switch
    {
        "control-raw" => Value,
        "control-json" => Json(Value),
        "control-base64" => Base64(Value),
        "base64-of-base64" => Base64(Base64(Value)),
        "base64url-of-base64" => Base64(Base64(Value)).Replace('+', '-').Replace('/', '_').TrimEnd('='),
        // A Kubernetes Secret manifest served by a contents API: base64 again, wrapped at 60 columns with JSON "\n".
        "base64-of-base64-wrapped" => string.Join("\\n", Base64("apiVersion: v1\nkind: Secret\ndata:\n  token: " + Base64(Value) + "\n").Chunk(60).Select(c => new string(c))),
        "base64-of-json-of-base64" => Base64("{\"data\":{\"token\":\"" + string.Join("\\n", Base64(Value).Chunk(16).Select(c => new string(c))) + "\"}}"),
        "utf16le-base64" => Base64(Encoding.Unicode.GetBytes(Value)),
        "utf16le-raw" => Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(Value)),
        "utf16be-raw" => Encoding.Latin1.GetString(Encoding.BigEndianUnicode.GetBytes(Value)),
        "utf16be-base64" => Base64(Encoding.BigEndianUnicode.GetBytes("$env:T='" + Value + "'")),
        "utf16le-json" => Json(Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(Value))),
        "percent-u" => PerChar("%u{0:X4}"),
        "js-code-point-braces" => PerChar("\\u{{{0:x}}}"),
        "css-escapes" => PerChar("\\{0:x} "),
        "octal-escapes" => string.Concat(Encoding.UTF8.GetBytes(Value).Select(b =>
            char.IsAsciiLetterOrDigit((char)b) ? ((char)b).ToString() : "\\" + Convert.ToString(b, 8).PadLeft(3, '0'))),
        "js-hex-upper" => PerByte("\\x{0:X2}"),
        "overlong-utf8-percent" => string.Concat(Encoding.UTF8.GetBytes(Value).Select(b => b < 0x80 && !char.IsAsciiLetterOrDigit((char)b)
            ? string.Format(CultureInfo.InvariantCulture, "%{0:X2}%{1:X2}", 0xC0 | (b >> 6), 0x80 | (b & 0x3F))
            : b < 0x80 ? ((char)b).ToString() : string.Format(CultureInfo.InvariantCulture, "%{0:X2}", b))),
        "json-of-base64-of-json" => Json(Base64("{\"k\":\"" + Json(Value) + "\"}")).Replace("/", "\\/", StringComparison.Ordinal),
        "percent-of-base64-of-percent" => Uri.EscapeDataString(Base64("state=" + Uri.EscapeDataString(Value))),
        "html-of-base64" => WebUtility.HtmlEncode(Base64(Value)).Replace("+", "&#43;", StringComparison.Ordinal).Replace("/", "&#x2F;", StringComparison.Ordinal),
        "qp-soft-breaks" => string.Concat(Encoding.UTF8.GetBytes(Value).Select((b, i) => string.Format(CultureInfo.InvariantCulture, "={0:X2}", b) + (i % 4 == 3 ? "=\r\n" : string.Empty))),
        "percent-all-lower" => string.Concat(Encoding.UTF8.GetBytes(Value).Select(b => string.Format(CultureInfo.InvariantCulture, "%{0:x2}", b))),
        "mixed-three" => Uri.EscapeDataString(Json(WebUtility.HtmlEncode(Value))),
        "mixed-three-html-url-json" => WebUtility.HtmlEncode(Uri.EscapeDataString(Json(Value))).Replace("%", "&percnt;", StringComparison.Ordinal),
        "base64-mime-76" => string.Join("\r\n", Base64(new string('a', 50) + Value + new string('b', 50)).Chunk(76).Select(c => new string(c))),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [MemberData(nameof(HeldForms))]
    public void A_form_the_matcher_knows_is_recognised_and_scrubbed(string kind) => AssertScrubbed(kind);

    [Theory]
    [MemberData(nameof(FixedForms))]
    public void A_decodable_form_of_the_value_is_recognised_and_scrubbed(string kind) => AssertScrubbed(kind);

    /// <summary>
    /// The new forms streamed (as the response path writes them) in two writes split at every offset, and in chunks of
    /// 1 to 7 bytes, come out exactly as the whole-body scrub, which replaced the value.
    /// </summary>
    [Theory]
    [MemberData(nameof(FixedForms))]
    public void A_fixed_form_split_at_every_offset_is_scrubbed_like_the_whole_body(string kind)
    {
        var substitutor = Substitutor();
        var bytes = Body(kind);
        var whole = substitutor.ScrubBody(bytes);
        Assert.NotNull(whole);
        Assert.Null(substitutor.FindRealValue(whole));
        for (var at = 0; at <= bytes.Length; at++)
        {
            AssertStreamed(substitutor, bytes, whole, [at], $"{kind} split at {at}");
        }

        for (var size = 1; size <= 7; size++)
        {
            AssertStreamed(substitutor, bytes, whole, [.. Enumerable.Range(1, bytes.Length / size).Select(k => k * size)], $"{kind} chunks of {size}");
        }
    }

    private static void AssertStreamed(Substitutor substitutor, byte[] bytes, byte[] whole, int[] cuts, string what)
    {
        using var sink = new Support.WriteOnlySink();
        using (var stream = substitutor.CreateScrubbingStream(sink, leaveOpen: true))
        {
            var from = 0;
            foreach (var cut in cuts.Append(bytes.Length))
            {
                stream.Write(bytes, from, Math.Max(0, Math.Min(cut, bytes.Length) - from));
                from = Math.Max(from, Math.Min(cut, bytes.Length));
            }
        }

        Assert.True(whole.AsSpan().SequenceEqual(sink.Data.ToArray()), $"{what}: streamed '{Encoding.Latin1.GetString(sink.Data.ToArray())}' vs whole '{Encoding.Latin1.GetString(whole)}'");
    }

    /// <summary>
    /// No false hits from the new decodings: binary with UTF-16 strings (an image's metadata), its base64, base64 of
    /// base64 of other text, and text full of <c>%u</c>, <c>\u{}</c>, CSS, octal and overlong-looking escapes are left as
    /// they are.
    /// </summary>
    [Fact]
    public void Ordinary_binary_and_text_with_the_new_escape_shapes_are_not_rewritten()
    {
        var substitutor = Substitutor();
        var random = new Random(6);
        var image = new byte[64 * 1024];
        random.NextBytes(image);
        for (var at = 0; at + 200 < image.Length; at += 997)
        {
            // UTF-16 text in binary (EXIF/XMP, PE resources): the value's own characters, in another order.
            Encoding.Unicode.GetBytes("level two 42 al u x z v " + at.ToString(CultureInfo.InvariantCulture)).CopyTo(image, at);
            Encoding.BigEndianUnicode.GetBytes("owt level\\ 24z").CopyTo(image, at + 100);
        }

        string[] texts =
        [
            Base64(image),
            Base64(Base64(Encoding.UTF8.GetBytes("apiVersion: v1\nkind: Secret\ndata:\n  token: " + Base64("not-the-value-" + new string('q', 30)) + "\n"))),
            "path C:\\101\\42 \\x\\u{1F600} %u0041%uD83D%uDE00 .a{content:\"\\2014 \\41 \"} %C1%81%C0%AF %E0%80%AF two level " + Value[..10],
            Json("<p>two&quot;level&#92;v/al+u&eacute; &lt;&amp;&gt; 42</p>") + Uri.EscapeDataString("two\"level\\v/al+u"),
        ];
        foreach (var text in texts)
        {
            var bytes = text == texts[0] ? image : Encoding.UTF8.GetBytes(text);
            Assert.Null(substitutor.ScrubBody(bytes));
            Assert.Null(substitutor.FindRealValue(bytes));
            Assert.Null(substitutor.ScrubBody(Encoding.UTF8.GetBytes(text)));
        }
    }

    /// <summary>The form's bytes: UTF-8, except raw UTF-16, whose code units are the bytes themselves.</summary>
    private static byte[] FormBytes(string kind) => kind.EndsWith("-raw", StringComparison.Ordinal) && kind.StartsWith("utf16", StringComparison.Ordinal)
        ? Encoding.Latin1.GetBytes(Form(kind))
        : Encoding.UTF8.GetBytes(Form(kind));

    private static byte[] Body(string kind) => [.. "{\"k\":\""u8, .. FormBytes(kind), .. "\",\"n\":1}"u8];

    private static void AssertScrubbed(string kind)
    {
        var substitutor = Substitutor();
        var body = Body(kind);
        var found = substitutor.FindRealValue(body) is not null;
        var scrubbed = substitutor.ScrubBody(body) ?? body;
        var survives = substitutor.FindRealValue(scrubbed) is not null;
        Assert.True(found && !survives, $"{kind}: found={found} survives={survives}");
    }

    public static TheoryData<string> Dense() =>
    [
        "percent", "percent25", "json-u", "json-backslash", "html-dec", "html-amp-amp", "base64", "base64-escaped-json",
        "base64-percent", "base64-of-base64", "qp", "js-x", "mixed", "base64-spaces", "near-miss-base64",
        "base64-of-base64-aligned", "base64-of-base64-json-breaks", "utf16le", "utf16le-base64", "percent-u", "percent-u-pairs",
        "js-braces", "octal", "css", "overlong", "mixed-three",
    ];

    private static string DenseUnit(string kind) => kind switch
    {
        "percent" => "%41",
        "percent25" => "%2541",
        "json-u" => "\\u0041",
        "json-backslash" => "\\\\",
        "html-dec" => "&#65;",
        "html-amp-amp" => "&amp;amp;",
        "base64" => "QUFB",
        "base64-escaped-json" => "QU\\u002BB",
        "base64-percent" => "QU%2BB",
        "base64-of-base64" => Base64("QUFBQUFB")[..8],
        "qp" => "=41",
        "js-x" => "\\x41",
        "mixed" => "%5C\\u0026&#37;",
        "base64-spaces" => "QUFB ",
        "base64-of-base64-aligned" => Base64(Base64(new string('A', 9))),
        "base64-of-base64-json-breaks" => Base64(Base64(new string('A', 9)))[..12] + "\\n",
        "utf16le" => Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(Value[..9])),
        "utf16le-base64" => Base64(Encoding.Unicode.GetBytes("AAA")),
        "percent-u" => "%u0041",
        "percent-u-pairs" => "%uD83D%uDE00",
        "js-braces" => "\\u{41}",
        "octal" => "\\101",
        "css" => "\\41 ",
        "overlong" => "%C1%81",
        "mixed-three" => "%5Cu0026amp%3B",
        _ => Base64(Value)[..8],
    };

    private static string DenseInput(string kind, int size)
    {
        var unit = DenseUnit(kind);
        var builder = new StringBuilder(size + unit.Length);
        while (builder.Length < size)
        {
            builder.Append(unit);
        }

        return builder.ToString();
    }

    /// <summary>
    /// Dense adversarial inputs (every byte part of an escape, base64 run or reference) at 256 KiB and 1 MiB: the matcher
    /// stays linear (at most 5x per 4x input, with 50 ms of slack for timer granularity) and under 2 s per MiB.
    /// </summary>
    [Theory]
    [MemberData(nameof(Dense))]
    public void Dense_adversarial_input_is_matched_in_linear_time(string kind)
    {
        var substitutor = Substitutor();
        var small = Encoding.UTF8.GetBytes(DenseInput(kind, 256 * 1024));
        var large = Encoding.UTF8.GetBytes(DenseInput(kind, 1024 * 1024));
        var (smallTime, largeTime) = Support.ThreadCpuTime.BestOfPairs(
            () => { _ = substitutor.FindRealValue(small); _ = substitutor.ScrubBody(small); },
            () => { _ = substitutor.FindRealValue(large); _ = substitutor.ScrubBody(large); },
            rounds: 3);
        var (a, b) = (smallTime.TotalSeconds, largeTime.TotalSeconds);
        Console.WriteLine($"R6 dense {kind}: 256KiB {a:F3}s 1MiB {b:F3}s ratio {b / Math.Max(a, 1e-6):F2}");
        Assert.True(b < 2.0, $"{kind}: 1 MiB took {b:F2}s");
        Assert.True(b <= (a * 5) + 0.05, $"{kind}: 256KiB {a:F3}s 1MiB {b:F3}s");
    }
}
