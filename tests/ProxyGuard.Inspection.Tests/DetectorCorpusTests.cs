using System.Text;
using System.Text.Json;

namespace ProxyGuard.Inspection.Tests;

public sealed class DetectorCorpusTests
{
    private static readonly ContentScanner _scanner = new(new ScannerOptions());

    [Fact]
    public void AtLeastThirtyBuiltinsWithStableKebabCaseIds()
    {
        Assert.True(ContentScanner.Builtins.Count >= 30, $"only {ContentScanner.Builtins.Count} detectors");
        Assert.All(ContentScanner.Builtins, d => Assert.Matches("^[a-z0-9]+(-[a-z0-9]+)*$", d.Id));
        Assert.Equal(ContentScanner.Builtins.Count, ContentScanner.Builtins.Select(d => d.Id).Distinct().Count());
        Assert.Contains(ContentScanner.Builtins, d => d.Id == "vault-secret");
    }

    [Fact]
    public void EveryDetectorHasPositivesAndNearMissesInTheCorpus()
    {
        foreach (var info in ContentScanner.Builtins.Where(d => d.Id != "vault-secret"))
        {
            Assert.True(Corpus.Entries.Any(e => e.Detector == info.Id && e.Positive), $"{info.Id}: no positive");
            Assert.True(Corpus.Entries.Any(e => e.Detector == info.Id && !e.Positive), $"{info.Id}: no near miss");
        }

        Assert.All(Corpus.Entries, e => Assert.Contains(ContentScanner.Builtins, d => d.Id == e.Detector));
    }

    [Theory]
    [MemberData(nameof(Corpus.Positives), MemberType = typeof(Corpus))]
    public void PositiveIsFoundInEveryLocation(string detector, string template, int seed)
    {
        var value = Corpus.Expand(template, seed);

        AssertFound(detector, _scanner.ScanText(value, ScanLocation.Header, "api.example.com"));
        AssertFound(detector, _scanner.ScanText("prefix " + value + " suffix", ScanLocation.Header, "api.example.com"));

        var json = JsonSerializer.Serialize(new { note = "config follows", value, n = 1 });
        AssertFound(detector, _scanner.ScanBody(Encoding.UTF8.GetBytes(json), null, "application/json", "api.example.com"));
        AssertFound(detector, _scanner.ScanBody(Encoding.UTF8.GetBytes("text before\n" + value + "\ntext after"), null, "text/plain", "api.example.com"));
    }

    [Theory]
    [MemberData(nameof(Corpus.Negatives), MemberType = typeof(Corpus))]
    public void NearMissIsNotFound(string detector, string template, int seed)
    {
        var value = Corpus.Expand(template, seed + 1000);
        AssertNotFound(detector, _scanner.ScanText(value, ScanLocation.Header, "api.example.com"));
        var json = JsonSerializer.Serialize(new { value });
        AssertNotFound(detector, _scanner.ScanBody(Encoding.UTF8.GetBytes(json), null, "application/json", "api.example.com"));
    }

    [Theory]
    [MemberData(nameof(Corpus.BenignFiles), MemberType = typeof(Corpus))]
    public void BenignCorpusHasNoFindings(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Corpus.Dir, "benign", file));
        var contentType = file.EndsWith(".json", StringComparison.Ordinal) ? "application/json" : "text/plain";
        var result = _scanner.ScanBody(bytes, null, contentType, "registry.example.com");
        Assert.True(result.Findings.Count == 0, $"{file}: {string.Join(", ", result.Findings.Select(f => f.Detector))}");
        Assert.Null(result.Error);
        Assert.False(result.Blocked);
    }

    [Fact]
    public void FindingsNeverCarryTheMatchedValue()
    {
        var token = Corpus.Expand("ghp_{A:36}", 7);
        var result = _scanner.ScanText("Bearer " + token, ScanLocation.Header, "h");
        var finding = Assert.Single(result.Findings);
        Assert.DoesNotContain(token, finding.ToString(), StringComparison.Ordinal);
        Assert.Equal(new Finding("github-token", ScanLocation.Header, ContentAction.Deny), finding);
        Assert.True(result.Blocked);
    }

    private static void AssertFound(string detector, ScanResult result) =>
        Assert.True(result.Findings.Any(f => f.Detector == detector), $"{detector} not found; got [{string.Join(", ", result.Findings.Select(f => f.Detector))}] error={result.Error}");

    private static void AssertNotFound(string detector, ScanResult result) =>
        Assert.False(result.Findings.Any(f => f.Detector == detector), $"{detector} found on a near miss");
}
