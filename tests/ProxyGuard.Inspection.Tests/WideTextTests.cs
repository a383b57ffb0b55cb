using System.Text;

namespace ProxyGuard.Inspection.Tests;

/// <summary>R7-5: bodies and multipart parts in UTF-16 or UTF-32 are transcoded before the detectors read them.</summary>
public sealed class WideTextTests
{
    private const string Vault = "wide-text-vault-value-7f3a9c2e";
    private static readonly ContentScanner _scanner = new(new ScannerOptions());
    private static readonly ContentScanner _vaultScanner = new(new ScannerOptions { KnownSecrets = [new KnownSecret("v", Vault)] });
    private static readonly string _aws = "AKIA" + "Z7Q3XK2WJ4MN8PLV";
    private static readonly string _json = "{\"aws_access_key_id\":\"" + _aws + "\"}";

    private static Encoding ByName(string name) => name switch
    {
        "utf-16le" => new UnicodeEncoding(bigEndian: false, byteOrderMark: true),
        "utf-16be" => new UnicodeEncoding(bigEndian: true, byteOrderMark: true),
        "utf-32le" => new UTF32Encoding(bigEndian: false, byteOrderMark: true),
        _ => new UTF32Encoding(bigEndian: true, byteOrderMark: true),
    };

    private static byte[] Encode(string text, string encoding, bool bom)
    {
        var e = ByName(encoding);
        return bom ? [.. e.GetPreamble(), .. e.GetBytes(text)] : e.GetBytes(text);
    }

    private static void AssertAws(ScanResult result)
    {
        Assert.Null(result.Error);
        Assert.True(result.Blocked);
        Assert.Contains(result.Findings, f => f.Detector.StartsWith("aws", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("utf-16le")]
    [InlineData("utf-16be")]
    [InlineData("utf-32le")]
    [InlineData("utf-32be")]
    public void A_key_in_a_body_with_a_byte_order_mark_is_found(string encoding) =>
        AssertAws(_scanner.ScanBody(Encode(_json, encoding, bom: true), null, "application/json", "h"));

    [Theory]
    [InlineData("utf-16le", "text/plain; charset=utf-16le")]
    [InlineData("utf-16be", "text/plain; charset=UTF-16BE")]
    [InlineData("utf-32le", "text/plain; charset=\"utf-32le\"")]
    [InlineData("utf-16le", "text/plain; charset=utf-16")]
    [InlineData("utf-16be", "text/plain; charset=utf-16")]
    [InlineData("utf-32be", "text/plain; charset=utf-32")]
    public void A_key_in_a_body_with_a_declared_charset_is_found(string encoding, string contentType) =>
        AssertAws(_scanner.ScanBody(Encode("key " + _aws + " here", encoding, bom: false), null, contentType, "h"));

    [Theory]
    [InlineData("utf-16le")]
    [InlineData("utf-16be")]
    [InlineData("utf-32le")]
    [InlineData("utf-32be")]
    public void A_key_in_json_told_only_by_its_zero_bytes_is_found(string encoding) =>
        AssertAws(_scanner.ScanBody(Encode(_json, encoding, bom: false), null, "application/json", "h"));

    [Fact]
    public void Escapes_and_compression_inside_a_wide_body_are_undone()
    {
        var escaped = "{\"k\":\"" + string.Concat(_aws.Select(c => $"\\u{(int)c:x4}")) + "\"}";
        AssertAws(_scanner.ScanBody(Encode(escaped, "utf-16le", bom: true), null, "application/json", "h"));
        var gzipped = DecoderTests.Compress(Encode(_json, "utf-32le", bom: true), "gzip");
        AssertAws(_scanner.ScanBody(gzipped, "gzip", "application/json", "h"));
        var form = Encode("a=1&key=" + Uri.EscapeDataString(_aws).Replace("A", "%41", StringComparison.Ordinal), "utf-16le", bom: false);
        AssertAws(_scanner.ScanBody(form, null, "application/x-www-form-urlencoded; charset=utf-16le", "h"));
    }

    [Theory]
    [InlineData("text/plain; charset=utf-16le", false)]
    [InlineData("application/json", true)]
    [InlineData("application/octet-stream", false)]
    public void A_key_in_a_wide_multipart_part_is_found(string partType, bool bom)
    {
        var head = Encoding.ASCII.GetBytes("--b\r\nContent-Disposition: form-data; name=\"f\"\r\nContent-Type: " + partType + "\r\n\r\n");
        var tail = Encoding.ASCII.GetBytes("\r\n--b--\r\n");
        byte[] body = [.. head, .. Encode(_json, "utf-16le", bom), .. tail];
        AssertAws(_scanner.ScanBody(body, null, "multipart/form-data; boundary=b", "h"));
    }

    [Fact]
    public void A_vault_value_in_utf32_is_found()
    {
        var result = _vaultScanner.ScanBody(Encode("{\"v\":\"" + Vault + "\"}", "utf-32le", bom: true), null, "application/json", "h");
        Assert.Contains(result.Findings, f => f.Detector == "vault-secret");
    }

    [Theory]
    [InlineData("utf-16le", new byte[] { 0xFF, 0xFE, 0x41, 0x00, 0x00, 0xD8, 0x41, 0x00 })]
    [InlineData("utf-16le", new byte[] { 0xFF, 0xFE, 0x41, 0x00, 0x41 })]
    [InlineData("utf-32le", new byte[] { 0xFF, 0xFE, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00 })]
    [InlineData("utf-16be declared", new byte[] { 0x00, 0x41, 0xDC, 0x00 })]
    public void An_invalid_sequence_in_a_declared_encoding_fails_closed(string label, byte[] body)
    {
        var contentType = label.EndsWith("declared", StringComparison.Ordinal) ? "text/plain; charset=utf-16be" : "text/plain";
        var result = _scanner.ScanBody(body, null, contentType, "h");
        Assert.Equal(ScanErrorKind.Undecodable, result.ErrorKind);
        Assert.True(result.Blocked);
    }

    [Fact]
    public void A_guessed_encoding_is_read_leniently()
    {
        // Zero bytes say UTF-16 LE, but a lone surrogate sits before the key: still found, no error.
        byte[] body = [.. Encode("{", "utf-16le", false), 0x00, 0xD8, .. Encode(_json, "utf-16le", false)];
        AssertAws(_scanner.ScanBody(body, null, "application/json", "h"));
        byte[] binary = [0x41, 0x00, 0x00, 0xD8, 0x01];
        Assert.Null(_scanner.ScanBody(binary, null, "application/octet-stream", "h").Error);
    }

    [Fact]
    public void Ordinary_bodies_are_not_changed()
    {
        var result = _scanner.ScanBody(Encoding.UTF8.GetBytes("{\"name\":\"caf\u00e9\",\"n\":3}"), null, "application/json; charset=utf-8", "h");
        Assert.Null(result.Error);
        Assert.False(result.Blocked);
    }
}
