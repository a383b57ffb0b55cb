using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace ProxyGuard.Inspection.Tests;

public sealed class DecoderTests
{
    private static readonly ContentScanner _scanner = new(new ScannerOptions());
    private static readonly string _token = Corpus.Expand("ghp_{A:36}", 11);
    private static readonly byte[] _json = Encoding.UTF8.GetBytes("{\"name\":\"build\",\"env\":{\"GH\":\"" + _token + "\"},\"n\":3}");

    internal static byte[] Compress(byte[] data, string coding)
    {
        using var output = new MemoryStream();
        using (Stream stream = coding switch
        {
            "gzip" => new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true),
            "deflate" => new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true),
            "rawdeflate" => new DeflateStream(output, CompressionLevel.Fastest, leaveOpen: true),
            "br" => new BrotliStream(output, CompressionLevel.Fastest, leaveOpen: true),
            _ => throw new ArgumentException(coding),
        })
        {
            stream.Write(data);
        }

        return output.ToArray();
    }

    private static void AssertGithub(ScanResult result)
    {
        Assert.Null(result.Error);
        Assert.True(result.Blocked);
        Assert.Contains(result.Findings, f => f.Detector == "github-token" && f.Location == ScanLocation.Body);
    }

    [Theory]
    [InlineData("gzip", "gzip")]
    [InlineData("x-gzip", "gzip")]
    [InlineData("deflate", "deflate")]
    [InlineData("deflate", "rawdeflate")]
    [InlineData("br", "br")]
    [InlineData("identity", null)]
    public void ContentEncodingIsUndone(string header, string? coding)
    {
        var body = coding is null ? _json : Compress(_json, coding);
        AssertGithub(_scanner.ScanBody(body, header, "application/json", "h"));
    }

    [Fact]
    public void StackedEncodingsAreUndoneInReverseOrder()
    {
        var body = Compress(Compress(_json, "gzip"), "br");
        AssertGithub(_scanner.ScanBody(body, "gzip, br", "application/json", "h"));
        AssertGithub(_scanner.ScanBody(Compress(Compress(body, "deflate"), "gzip"), "gzip, br, deflate, gzip", "application/json", "h"));
    }

    [Theory]
    [InlineData("zstd")]
    [InlineData("compress")]
    [InlineData("gzip, foo")]
    public void UnknownEncodingIsAnError(string header)
    {
        var result = _scanner.ScanBody(Compress(_json, "gzip"), header, "application/json", "h");
        Assert.True(result.Blocked);
        Assert.StartsWith("undecodable content-encoding", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void CorruptCompressedBodyIsAnError()
    {
        var body = Compress(_json, "gzip");
        body[^6] ^= 0xFF;
        body[20] ^= 0x55;
        var result = _scanner.ScanBody(body, "gzip", "application/json", "h");
        Assert.True(result.Blocked);
        Assert.NotNull(result.Error);
        Assert.True(_scanner.ScanBody("not gzip at all"u8.ToArray(), "gzip", null, "h").Blocked);
    }

    [Fact]
    public void UrlEncodingInTextIsUndone()
    {
        var encoded = Uri.EscapeDataString("token=" + _token).Replace("_", "%5F", StringComparison.Ordinal);
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes("{\"q\":\"" + encoded + "\"}"), null, "application/json", "h"));
    }

    [Fact]
    public void FormEncodingIsUndone()
    {
        var key = Corpus.Expand("-----BEGIN+RSA+PRIVATE+KEY-----%0A{b:64}", 3);
        var result = _scanner.ScanBody(Encoding.UTF8.GetBytes("a=1&key=" + key + "&b=2"), null, "application/x-www-form-urlencoded", "h");
        Assert.Contains(result.Findings, f => f.Detector == "private-key-pem");
    }

    [Fact]
    public void JsonEscapesAreUndone()
    {
        var escaped = string.Concat(_token.Select(c => $"\\u{(int)c:x4}"));
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes("{\"t\":\"" + escaped + "\"}"), null, "application/json", "h"));
        var url = "https:\\/\\/deploy:" + Corpus.Expand("{A:16}", 4) + "@db.example.com\\/x";
        Assert.Contains(_scanner.ScanBody(Encoding.UTF8.GetBytes("{\"u\":\"" + url + "\"}"), null, "application/json", "h").Findings, f => f.Detector == "url-password");
    }

    [Fact]
    public void MultipartWithBase64PartIsDecoded()
    {
        var part = Convert.ToBase64String(_json, Base64FormattingOptions.InsertLineBreaks);
        var body = "--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\nhello\r\n" +
                   "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.json\"\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
                   part + "\r\n--XyZ--\r\n";
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes(body), null, "multipart/form-data; boundary=XyZ", "h"));
    }

    [Fact]
    public void MultipartWithQuotedPrintableAndGzipPartsIsDecoded()
    {
        var qp = string.Concat(_token.Select(c => $"={(int)c:X2}"));
        var body = "--b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nx " + qp + " y\n--b--\n";
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes(body), null, "multipart/mixed; boundary=\"b\"", "h"));

        var gz = Convert.ToBase64String(Compress(_json, "gzip"));
        var body2 = "--b\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + gz + "\r\n--b--\r\n";
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes(body2), null, "multipart/related; boundary=b", "h"));
    }

    [Fact]
    public void Base64AndBase64UrlRunsAreDecoded()
    {
        var text = "{\"config\":\"" + Convert.ToBase64String(_json) + "\"}";
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes(text), null, "application/json", "h"));
        var url = Convert.ToBase64String(Encoding.UTF8.GetBytes("??>>" + _token + "??>>")).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        AssertGithub(_scanner.ScanBody(Encoding.UTF8.GetBytes("data=" + url), null, "text/plain", "h"));
    }

    [Fact]
    public void NestedBase64InJsonInGzipIsFound()
    {
        var inner = JsonSerializer.Serialize(new { blob = Convert.ToBase64String(Compress(_json, "gzip")) });
        var outer = JsonSerializer.Serialize(new { payload = Convert.ToBase64String(Encoding.UTF8.GetBytes(inner)) });
        AssertGithub(_scanner.ScanBody(Compress(Encoding.UTF8.GetBytes(outer), "gzip"), "gzip", "application/json", "h"));
    }

    [Fact]
    public void NestingBeyondMaxDepthIsDenied()
    {
        var scanner = new ContentScanner(new ScannerOptions { MaxDepth = 2 });
        var value = Encoding.UTF8.GetBytes("secret: " + _token);
        for (var i = 0; i < 4; i++)
        {
            value = Encoding.UTF8.GetBytes("{\"v\":\"" + Convert.ToBase64String(value) + "\"}");
        }

        Assert.True(scanner.ScanBody(value, null, "application/json", "h").Blocked);
    }

    [Fact]
    public void GzipBombIsRejectedFastWithBoundedMemory()
    {
        // 200 MiB of zeros, gzipped (about 200 KiB).
        byte[] bomb;
        using (var output = new MemoryStream())
        {
            using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
            {
                var zeros = new byte[1024 * 1024];
                for (var i = 0; i < 200; i++)
                {
                    gzip.Write(zeros);
                }
            }

            bomb = output.ToArray();
        }

        _scanner.ScanBody(Compress(_json, "gzip"), "gzip", null, "h");
        GC.Collect();
        var before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        var result = _scanner.ScanBody(bomb, "gzip", "application/json", "h");
        watch.Stop();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(result.Blocked);
        Assert.Equal("decompression limit exceeded", result.Error);
        Assert.True(allocated < 64L * 1024 * 1024, $"allocated {allocated / (1024 * 1024)} MiB");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");

        // The absolute cap applies even when the ratio would allow more.
        var strict = new ContentScanner(new ScannerOptions { MaxDecodedBytes = 4 * 1024 * 1024, MaxExpansionRatio = 100_000 });
        Assert.Equal("decompression limit exceeded", strict.ScanBody(bomb, "gzip", null, "h").Error);
    }
}
