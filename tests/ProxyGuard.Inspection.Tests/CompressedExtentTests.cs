using System.Text;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Tests;

/// <summary>R7-4: a compressed request body must be exactly one complete stream; nothing after it goes unscanned.</summary>
public sealed class CompressedExtentTests
{
    private static readonly ContentScanner _scanner = new(new ScannerOptions());
    private static readonly string _token = Corpus.Expand("ghp_{A:36}", 11);

    public static TheoryData<string, int> Codings => new()
    {
        { "gzip", 6 }, { "deflate", 6 }, { "rawdeflate", 6 }, { "br", 6 },
        { "gzip", 300_000 }, { "deflate", 300_000 }, { "rawdeflate", 300_000 }, { "br", 300_000 },
    };

    private static byte[] Data(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }

    private static string Coding(string kind) => kind == "rawdeflate" ? "deflate" : kind;

    [Theory]
    [MemberData(nameof(Codings))]
    public void A_whole_stream_is_accepted(string kind, int length)
    {
        var body = DecoderTests.Compress(Data(length), kind);
        Assert.Null(CompressedExtent.Check(body, 0, body.Length, Coding(kind), out var headerText));
        Assert.True(headerText.IsEmpty);
        Assert.Null(_scanner.ScanBody(body, Coding(kind), "application/octet-stream", "h").Error);
    }

    [Theory]
    [MemberData(nameof(Codings))]
    public void Bytes_after_the_end_of_the_stream_are_refused(string kind, int length)
    {
        var compressed = DecoderTests.Compress(Data(length), kind);
        foreach (var tail in new[] { "x", "\x1f", "\x1f\x8b", "\x1f\x8b\x08", "\n" + _token + "\n", new string('A', 9000) })
        {
            byte[] body = [.. compressed, .. Encoding.Latin1.GetBytes(tail)];
            Assert.NotNull(CompressedExtent.Check(body, 0, body.Length, Coding(kind), out _));
            var result = _scanner.ScanBody(body, Coding(kind), "application/octet-stream", "h");
            Assert.Equal(ScanErrorKind.Undecodable, result.ErrorKind);
            Assert.DoesNotContain(_token, result.Error!, StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(Codings))]
    public void A_stream_cut_short_is_refused(string kind, int length)
    {
        var compressed = DecoderTests.Compress(Data(length), kind);
        var body = compressed[..^1];
        Assert.NotNull(CompressedExtent.Check(body, 0, body.Length, Coding(kind), out _));
    }

    [Fact]
    public void A_second_gzip_member_is_refused()
    {
        byte[] body = [.. DecoderTests.Compress(Encoding.UTF8.GetBytes("hello "), "gzip"), .. DecoderTests.Compress(Encoding.UTF8.GetBytes(_token), "gzip")];
        Assert.Equal(ScanErrorKind.Undecodable, _scanner.ScanBody(body, "gzip", "text/plain", "h").ErrorKind);
    }

    [Theory]
    [InlineData(0x08)] // file name
    [InlineData(0x10)] // comment
    public void A_token_in_a_gzip_header_field_is_scanned(byte flag)
    {
        var member = DecoderTests.Compress(Encoding.UTF8.GetBytes("hello "), "gzip");
        byte[] body = [.. member[..3], flag, .. member[4..10], .. Encoding.ASCII.GetBytes(_token), 0, .. member[10..]];
        var result = _scanner.ScanBody(body, "gzip", "text/plain", "h");
        Assert.Null(result.Error);
        Assert.True(result.Blocked);
        Assert.Contains(result.Findings, f => f.Detector == "github-token");
    }

    [Fact]
    public void A_gzip_file_name_without_a_token_is_allowed()
    {
        var member = DecoderTests.Compress(Encoding.UTF8.GetBytes("hello "), "gzip");
        byte[] body = [.. member[..3], 0x08, .. member[4..10], .. "report.txt"u8, 0, .. member[10..]];
        var result = _scanner.ScanBody(body, "gzip", "text/plain", "h");
        Assert.Null(result.Error);
        Assert.False(result.Blocked);
    }
}
