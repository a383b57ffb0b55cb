using System.IO.Compression;
using System.Text;

namespace ProxyGuard.Inspection.Tests.Complexity;

/// <summary>
/// Adversarial inputs for every scanner and decoder path, built at any size. Each shape returns a scan to time; the
/// input is built outside the timed part. Shared with bench/ProxyGuard.Bench.Micro (<c>-- complexity</c>).
/// </summary>
public static class ComplexityShapes
{
    public const string Host = "api.example.com";

    /// <summary>A scan of one prepared input: returns the result (kept so the work cannot be optimised away).</summary>
    public delegate ScanResult Scan(ContentScanner scanner);

    public sealed record Shape(string Name, Func<int, Scan> Build);

    /// <summary>Every built-in detector plus a vault secret: bodies are scanned as bytes.</summary>
    public static ContentScanner ByteScanner(TimeSpan? budget = null) => new(new ScannerOptions
    {
        KnownSecrets = [new KnownSecret("k", "complexity-known-secret-value-0123")],
        ScanBudget = budget ?? Timeout.InfiniteTimeSpan,
    });

    /// <summary>The same plus a policy rule for the host: bodies go the <c>char</c> way.</summary>
    public static ContentScanner CharScanner(TimeSpan? budget = null) => new(new ScannerOptions
    {
        KnownSecrets = [new KnownSecret("k", "complexity-known-secret-value-0123")],
        CustomRules = [new CustomRule("acme", "acme_[a-z0-9]{32}", ContentAction.Deny, _ => true)],
        ScanBudget = budget ?? Timeout.InfiniteTimeSpan,
    });

    public static IReadOnlyList<Shape> All { get; } =
    [
        Body("percent %41", "text/plain", "%41"),
        Body("percent nested %2541", "text/plain", "%2541"),
        Body("percent %25%25", "text/plain", "%25"),
        Body("percent of a token char + space", "text/plain", "%41 "),
        Body("json \\u0041", "application/json", "\\u0041"),
        Body("json \\u0025 then 41", "application/json", "\\u002541"),
        Body("json \\/", "application/json", "\\/"),
        Body("json \\\\u", "application/json", "\\\\u"),
        Body("backslashes", "application/json", "\\"),
        Body("percent signs", "text/plain", "%"),
        Body("equals", "text/plain", "="),
        Body("alternating %41 \\u0041", "text/plain", "%41\\u0041"),
        Body("alternating \\u0041 %41 \\/", "text/plain", "\\u0041%41\\/"),
        Body("escapes between base64", "text/plain", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY%41"),
        Body("escape every 19 chars", "text/plain", "abcdefghijklmnopqrs%41"),
        Body("escape every 200 chars", "text/plain", new string('a', 197) + "%41"),
        Body("escape every 400 chars", "text/plain", new string('a', 397) + "%41"),
        Body("escape every 400 chars, spaced", "text/plain", "a " + new string('a', 395) + "%41"),
        Body("html entities", "text/html", "&#65;&#x41;&amp;"),
        Body("ampersands (fuzz: 16 KiB of &)", "text/plain", "&"),
        Body("base64 of text, one run", "text/plain", "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg"),
        Body("base64 of base64 of text", "text/plain", Convert.ToBase64String(Encoding.ASCII.GetBytes("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg"))),
        Body("short base64 runs", "text/plain", "aGVsbG8gd29ybGQgaGVsbG8= "),
        Body("base64 runs just under 20", "text/plain", "aGVsbG8gd29ybGQgaGV "),
        Body("base64 mixed case, not text", "text/plain", "AbCdEfGhIjKlMnOpQrStUvWx"),
        Body("base64 wrapped at 76", "text/plain", Wrapped(76, "\n")),
        Body("base64 wrapped at 40 CRLF", "text/plain", Wrapped(40, "\r\n")),
        Body("base64 wrapped at 8", "text/plain", Wrapped(8, "\n")),
        Body("base64 wrapped at 4 CRLF", "text/plain", Wrapped(4, "\r\n")),
        Body("base64 lines of 4", "text/plain", "QUJD\n"),
        Body("base64 lines of 16, uneven", "text/plain", "aGVsbG8gd29ybGQg\naGVs\n"),
        Body("base64 of gzip runs", "text/plain", Convert.ToBase64String(Gzip(Encoding.ASCII.GetBytes("hello world hello world"))) + " "),
        Body("newlines", "text/plain", "\n"),
        Body("crlf", "text/plain", "\r\n"),
        Body("near-miss AKIA", "text/plain", "AKIA"),
        Body("near-miss ghp_", "text/plain", "ghp_"),
        Body("near-miss github_pat_", "text/plain", "github_pat_"),
        Body("near-miss aws_secret keyword", "text/plain", "aws_secret "),
        Body("near-miss service_account", "application/json", "\"type\":\"service_account\","),
        Body("near-miss xoxb-", "text/plain", "xoxb-1-"),
        Body("near-miss eyJ", "text/plain", "eyJ"),
        Body("near-miss -----BEGIN", "text/plain", "-----BEGIN "),
        Body("at signs", "text/plain", "@"),
        Body("url userinfo without password", "text/plain", "http://aaaaaaaa@"),
        Body("url userinfo, long user", "text/plain", "x://" + new string('u', 500) + ":@"),
        Body("vault secret prefix", "text/plain", "complexity-known-secret-valu"),
        new("form %41", size => Bytes(size, "a=%41&", "application/x-www-form-urlencoded", null)),
        new("form +", size => Bytes(size, "+", "application/x-www-form-urlencoded", null)),
        new("multipart empty parts LF", size => Bytes(size, "--b\n\n", "multipart/form-data; boundary=b", null)),
        new("multipart empty parts CRLF", size => Bytes(size, "--b\r\n\r\n", "multipart/form-data; boundary=b", null)),
        new("multipart boundary-like lines", size => Bytes(size, "--bx\n", "multipart/form-data; boundary=b", null)),
        new("multipart one part of %41", size => Multipart(size, "text/plain", null, "%41")),
        new("multipart quoted-printable =41", size => Multipart(size, "text/plain", "quoted-printable", "=41")),
        new("multipart quoted-printable soft breaks", size => Multipart(size, "text/plain", "quoted-printable", "=\n")),
        new("multipart base64 lines", size => Multipart(size, "text/plain", "base64", "aGVsbG8gd29ybGQg\n")),
        new("multipart nested", size => NestedMultipart(size)),
        new("gzip of %41", size => Bytes(size, "%41", "text/plain", "gzip")),

        // fuzz/regressions/scan-slow: a multipart body without its boundary whose base64 run decodes to a zlib
        // header every 32 bytes, and a UTF-16 text body of short base64-looking runs.
        new(MultipartZlibHeaderRuns, size => Bytes(size, "?/a\u000f\u00b9G\u0000@/a\u000f\u00b9WEeyJ9eyJEeyJ9eyJ9ey", "multipart/mixed; boundary=\"a b\"", null)),
        new(Utf16TextRuns, size => Bytes(size, "VVjVVVVVVVVVVVVV\u0000aaIG-gl29ybVVVVVVVVVVV", "text/plain; charset=utf-16", null)),
        new("utf-16le with a mark, %41", size => Wide(size, "%41", "text/plain", Encoding.Unicode, bom: true)),
        new("utf-16be with a mark, base64 of text", size => Wide(size, "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg ", "text/plain", Encoding.BigEndianUnicode, bom: true)),
        new("utf-16 by charset, both orders, near-miss AKIA", size => Wide(size, "AKIA", "application/json; charset=utf-16", Encoding.Unicode, bom: false)),
        new("utf-16le by zero bytes, \\u0041", size => Wide(size, "\\u0041", "application/json", Encoding.Unicode, bom: false)),
        new("utf-32 with a mark, json \\u0041", size => Wide(size, "\\u0041", "application/json", Encoding.UTF32, bom: true)),
        new("utf-16le form %41", size => Wide(size, "a=%41&", "application/x-www-form-urlencoded; charset=utf-16le", Encoding.Unicode, bom: false)),
        new("utf-16 zero-byte lookalike binary", size => Bytes(size, "A\u0000\u0000\u00d8", "application/octet-stream", null)),
        new("multipart utf-16le parts", size => Multipart(size, "text/plain; charset=utf-16le", null, "A\u0000%\u00004\u00001\u0000")),
        new("gzip of \\u0041", size => Bytes(size, "\\u0041", "application/json", "gzip")),
        new("header %41", size => Text(size, "%41", ScanLocation.Header)),
        new("header \\u0041", size => Text(size, "\\u0041", ScanLocation.Header)),
        new("header base64 of text", size => Text(size, "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg", ScanLocation.Header)),
        new("header near-miss AKIA", size => Text(size, "AKIA", ScanLocation.Header)),
        new("host labels", size => Text(size, "a1.", ScanLocation.Host)),
        new("host hex labels", size => Text(size, "616263646566676869.", ScanLocation.Host)),
        new("query %41", size => Query(size, "%41")),
        new("query many pairs", size => Query(size, "a=%41&")),
        new("query empty pairs", size => Query(size, "&")),
        new("query base64 values", size => Query(size, "v=aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg&")),
    ];

    public const string MultipartZlibHeaderRuns = "multipart, no boundary, zlib-header base64 runs";

    public const string Utf16TextRuns = "utf-16 text, short base64-looking runs";

    public static Shape Find(string name) => All.First(s => s.Name == name);

    public static byte[] Repeat(string unit, int size)
    {
        var builder = new StringBuilder(size + unit.Length);
        while (builder.Length + unit.Length <= size)
        {
            builder.Append(unit);
        }

        return Encoding.Latin1.GetBytes(builder.ToString());
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    private static Shape Body(string name, string contentType, string unit) => new(name, size => Bytes(size, unit, contentType, null));

    private static Scan Bytes(int size, string unit, string contentType, string? coding)
    {
        var body = Repeat(unit, size);
        if (coding == "gzip")
        {
            body = Gzip(body);
        }

        return scanner => scanner.ScanBody(body, coding, contentType, Host);
    }

    private static Scan Wide(int size, string unit, string contentType, Encoding encoding, bool bom)
    {
        var text = Encoding.Latin1.GetString(Repeat(unit, size / encoding.GetByteCount("a")));
        byte[] body = bom ? [.. encoding.GetPreamble(), .. encoding.GetBytes(text)] : encoding.GetBytes(text);
        return scanner => scanner.ScanBody(body, null, contentType, Host);
    }

    private static Scan Text(int size, string unit, ScanLocation location)
    {
        var text = Encoding.Latin1.GetString(Repeat(unit, size));
        return scanner => scanner.ScanText(text, location, Host);
    }

    private static Scan Query(int size, string unit)
    {
        var text = Encoding.Latin1.GetString(Repeat(unit, size));
        return scanner => scanner.ScanQuery(text, Host);
    }

    private static Scan Multipart(int size, string contentType, string? transfer, string unit)
    {
        var head = "--b\r\nContent-Disposition: form-data; name=\"f\"\r\nContent-Type: " + contentType + "\r\n"
            + (transfer is null ? string.Empty : "Content-Transfer-Encoding: " + transfer + "\r\n") + "\r\n";
        var body = Encoding.Latin1.GetBytes(head + Encoding.Latin1.GetString(Repeat(unit, size)) + "\r\n--b--\r\n");
        return scanner => scanner.ScanBody(body, null, "multipart/form-data; boundary=b", Host);
    }

    private static Scan NestedMultipart(int size)
    {
        var builder = new StringBuilder();
        for (var level = 0; level < 6; level++)
        {
            builder.Append("--b").Append(level).Append("\r\nContent-Type: multipart/mixed; boundary=b").Append(level + 1).Append("\r\n\r\n");
        }

        builder.Append(Encoding.Latin1.GetString(Repeat("--b6\r\n\r\n%41\r\n", size)));
        var body = Encoding.Latin1.GetBytes(builder.ToString());
        return scanner => scanner.ScanBody(body, null, "multipart/mixed; boundary=b0", Host);
    }

    private static string Wrapped(int width, string newline)
    {
        var encoded = Convert.ToBase64String(Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog ", 4))));
        var builder = new StringBuilder();
        for (var i = 0; i < encoded.Length; i += width)
        {
            builder.Append(encoded.AsSpan(i, Math.Min(width, encoded.Length - i))).Append(newline);
        }

        return builder.Append(newline).ToString();
    }
}
