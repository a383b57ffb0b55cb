using System.Text;
using ProxyGuard.Engine.Framing;

namespace ProxyGuard.Engine.Tests.Framing;

public sealed class FramingTrackerTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    [Fact]
    public void Hpack_decodes_the_rfc_7541_request_examples_with_huffman_and_the_dynamic_table()
    {
        var decoder = new HpackDecoder(4096);
        var fields = new List<string>();
        void Add(string n, string v) => fields.Add(n + ": " + v);

        decoder.Decode(Hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), Add);
        Assert.Equal([":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com"], fields);

        fields.Clear();
        decoder.Decode(Hex("8286 84be 5886 a8eb 1064 9cbf"), Add);
        Assert.Equal([":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache"], fields);

        fields.Clear();
        decoder.Decode(Hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"), Add);
        Assert.Equal([":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com", "custom-key: custom-value"], fields);
    }

    [Theory]
    [InlineData("ff")]          // index past the tables, truncated integer
    [InlineData("be")]          // dynamic index with an empty table
    [InlineData("0085 f2b2")]   // Huffman string shorter than its length
    [InlineData("3fe2 1f")]     // table size update to 4097, above the advertised 4096
    public void Hpack_refuses_malformed_blocks(string hex)
    {
        Assert.Throws<InvalidDataException>(() => new HpackDecoder(4096).Decode(Hex(hex), (_, _) => { }));
    }

    [Fact]
    public void Http1_tracker_follows_bodies_fed_one_byte_at_a_time()
    {
        var inner = "GET /x HTTP/1.1\r\nContent-Length: +1\r\nTransfer-Encoding: chunked\r\n\r\n";
        var heads = new[]
        {
            $"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: {inner.Length}\r\n\r\n{inner}",
            "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nabcd\r\n0\r\nT: 1\r\n\r\n",
            "\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
        };
        var feature = new FramingFeature();
        var tracker = new Http1FramingTracker(feature, 64 * 1024);
        foreach (var b in Encoding.Latin1.GetBytes(string.Concat(heads)))
        {
            tracker.Feed([b]);
        }

        var headEnd = heads[0].IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        feature.Consumed(headEnd);
        Assert.Equal(FramingProblem.None, feature.CurrentHttp1());
        var second = heads[0].Length + heads[1].IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        feature.Consumed(second);
        Assert.Equal(FramingProblem.None, feature.CurrentHttp1());
        var third = heads[0].Length + heads[1].Length + heads[2].IndexOf("\r\n\r\n", 2, StringComparison.Ordinal) + 4;
        feature.Consumed(third);
        Assert.Equal(FramingProblem.NonCanonicalLength, feature.CurrentHttp1());
        feature.Consumed(third + 5);
        Assert.Equal(FramingProblem.Unverified, feature.CurrentHttp1());
    }

    [Theory]
    [InlineData("Content-Length: 5\r\nTransfer-Encoding: chunked", "LengthAndTransferEncoding")]
    [InlineData("transfer-encoding: chunked\r\ncontent-length: 0", "LengthAndTransferEncoding")]
    [InlineData("Content-Length: +5", "NonCanonicalLength")]
    [InlineData("Content-Length: -0", "NonCanonicalLength")]
    [InlineData("Content-Length: 05", "NonCanonicalLength")]
    [InlineData("Content-Length: 5, 5", "NonCanonicalLength")]
    [InlineData("Content-Length: 5\r\nContent-Length: 5", "NonCanonicalLength")]
    [InlineData("Content-Length:\t5 ", "None")]
    [InlineData("Content-Length: 0", "None")]
    public void Http1_tracker_flags_ambiguous_lengths(string headers, string expected)
    {
        var head = $"POST / HTTP/1.1\r\nHost: h\r\n{headers}\r\n\r\n";
        var feature = new FramingFeature();
        new Http1FramingTracker(feature, 64 * 1024).Feed(Encoding.Latin1.GetBytes(head));
        feature.Consumed(head.Length);
        Assert.Equal(expected, feature.CurrentHttp1().ToString());
    }

    [Fact]
    public void A_request_the_tracker_never_saw_is_unverified()
    {
        var feature = new FramingFeature();
        Assert.Equal(FramingProblem.Unverified, feature.CurrentHttp1());
        Assert.Equal(FramingProblem.Unverified, feature.Stream(1));
    }
}
