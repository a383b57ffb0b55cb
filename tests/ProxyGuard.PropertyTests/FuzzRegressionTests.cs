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
}
