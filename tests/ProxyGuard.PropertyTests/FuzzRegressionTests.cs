using ProxyGuard.Policy;

namespace ProxyGuard.PropertyTests;

/// <summary>Crashes found by fuzzing (inputs kept in fuzz/regressions/TARGET), pinned as plain tests.</summary>
public sealed class FuzzRegressionTests
{
    [Theory]
    [InlineData("!!+!")]
    [InlineData("!<!+!> x")]
    [InlineData("!!+ x")]
    [InlineData("version: !!+ 1")]
    public void An_invalid_YAML_tag_is_a_diagnostic_not_an_exception(string yaml)
    {
        // AFL++ on the policy target: YamlDotNet throws ArgumentException ("Global tags must be valid URIs") for "!!+",
        // which escaped PolicyLoader (a reload from such a file threw instead of keeping the last good policy).
        var result = PolicyLoader.LoadText(yaml, "fuzzed.yaml");
        Assert.Null(result.Policy);
        Assert.NotEmpty(result.Diagnostics);
        Assert.All(result.Diagnostics, d => Assert.StartsWith("fuzzed.yaml:1:", d.ToString(), StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("/repos/acme/\u00e9\u007f")]
    [InlineData("/repos/acme/\ufffd\u007fx")]
    [InlineData("/repos/acme/\u4e2d\u007f\u007f")]
    public void A_DEL_after_non_ASCII_characters_is_ambiguous_like_a_DEL_anywhere_else(string raw)
    {
        // AFL++ on the path target: the run of non-ASCII characters swallowed a following DEL (0x7F) and encoded it
        // without flagging the path ambiguous, so "/repos/acme/\u00e9<DEL>" matched an allow path rule while
        // "/repos/acme/<DEL>" did not, and the normal form was not a fixed point.
        Assert.True(PathNormalizer.Normalize("/repos/acme/\u007f").Ambiguous);
        var n = PathNormalizer.Normalize(raw);
        Assert.True(n.Ambiguous, n.Path);
        var policy = PolicyLoader.LoadText(
            """
            version: 1
            default: deny
            rules:
              - name: repos
                hosts: [api.example.com]
                paths: ["/repos/acme/**"]
                action: allow
            """,
            "regression.yaml").Policy!;
        var decision = policy.DecideRequest(null, "https", "api.example.com", 443, "GET", raw);
        Assert.False(decision.Allowed);
        Assert.Equal("ambiguous-path", decision.Reason);
    }

    [Fact]
    public void A_corrupt_brotli_body_is_a_scan_error_not_an_exception()
    {
        // AFL++ on the scan-br target: BrotliStream throws InvalidOperationException ("Decoder ran into invalid data"),
        // which escaped ContentScanner.ScanBody; in the proxy the request then failed with no audit event.
        var input = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "fuzz-regressions", "scan-br", "brotli-invalid-data"));
        var scanner = new ProxyGuard.Inspection.ContentScanner(new ProxyGuard.Inspection.ScannerOptions());
        var result = scanner.ScanBody(input.AsMemory(1), "br", "text/plain", "api.example.com");
        Assert.True(result.Blocked);
        Assert.NotNull(result.Error);
    }

    [Fact]
    public void Many_Transfer_Encoding_fields_cost_allocation_linear_in_the_head()
    {
        // Found writing the framing-h1 target (its allocation bound): every Transfer-Encoding field was appended to one
        // string, so a 40 KB head of 1,900 fields allocated 7.7 MB (quadratic). Only the last field's final coding
        // matters, and that is what the tracker keeps now.
        var head = "POST / HTTP/1.1\r\n" + string.Concat(Enumerable.Repeat("Transfer-Encoding:a\r\n", 1900)) + "\r\n";
        var bytes = System.Text.Encoding.ASCII.GetBytes(head);
        var tracker = new ProxyGuard.Engine.Framing.Http1FramingTracker(new ProxyGuard.Engine.Framing.FramingFeature(), 41 * 1024);
        var before = GC.GetAllocatedBytesForCurrentThread();
        tracker.Feed(bytes);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 40L * bytes.Length, $"{allocated} bytes allocated for a {bytes.Length}-byte head");

        // The final coding of the combined list still decides: chunked last is followed, chunked before gzip is not.
        Assert.Equal(ProxyGuard.Engine.Framing.FramingProblem.None, SecondHead("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"));
        Assert.Equal(ProxyGuard.Engine.Framing.FramingProblem.Unverified, SecondHead("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"));

        static ProxyGuard.Engine.Framing.FramingProblem SecondHead(string fields)
        {
            var stream = "POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n3\r\nabc\r\n0\r\n\r\n";
            var next = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
            var feature = new ProxyGuard.Engine.Framing.FramingFeature();
            new ProxyGuard.Engine.Framing.Http1FramingTracker(feature, 8192).Feed(System.Text.Encoding.ASCII.GetBytes(stream + next));
            feature.Consumed(stream.Length + next.Length);
            return feature.CurrentHttp1();
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(4096)]
    public void A_trailer_section_over_the_limit_stops_the_tracker_where_it_began_however_reads_are_cut(int readSize)
    {
        // Found by the framing-h1 target (split reads): past the limit in a trailer section or chunk extension, the
        // tracker stopped at the start of the current read, so where it stopped depended on how the bytes arrived.
        const string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        const string body = "5;ext=1\r\nhello\r\n0\r\n";
        var input = System.Text.Encoding.ASCII.GetBytes(head + body + "X-Trailer: " + new string('a', 200) + "\r\n\r\n");
        var feature = new ProxyGuard.Engine.Framing.FramingFeature();
        var tracker = new ProxyGuard.Engine.Framing.Http1FramingTracker(feature, 64);
        for (var i = 0; i < input.Length; i += readSize)
        {
            tracker.Feed(input.AsSpan(i, Math.Min(readSize, input.Length - i)));
        }

        var sectionStart = head.Length + body.Length;
        feature.Consumed(sectionStart);
        Assert.Equal(ProxyGuard.Engine.Framing.FramingProblem.None, feature.CurrentHttp1());
        feature.Consumed(sectionStart + 1);
        Assert.Equal(ProxyGuard.Engine.Framing.FramingProblem.Unverified, feature.CurrentHttp1());
    }
}
