using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ProxyGuard.Policy.Tests;

/// <summary>
/// CPU budget for custom content rules (issue 20 class 7): patterns whose counted repetitions unfold into a large
/// automaton are refused at load with their position; everything accepted scans adversarial input quickly.
/// </summary>
public sealed class RegexCostTests
{
    private static string Policy(string pattern) => $"""
        version: 1
        content:
          rules:
            - name: custom
              pattern: '{pattern}'
              action: deny
        """;

    [Theory]
    [InlineData("[a-z0-9]{1,9000}z", 8)]
    [InlineData("(a{1,100}){1,100}", 2)]
    [InlineData("(a[a-z]{1,20}){1,5}z", 7)]
    [InlineData("(?:x(?:y{1,10}){1,10}){1,10}", 15)]
    [InlineData("[a-z]{1,100}[a-z0-9]{1,100}z", 20)]
    [InlineData("[a-z]{1,64}[a-z0-9]{1,64}z", 19)]
    [InlineData("a{101}", 1)]
    [InlineData("a{200,}", 1)]
    [InlineData("a{1,99999999999999999999}", 1)]
    [InlineData("\\p{L}{1,9000}", 5)]
    [InlineData("[{]{1,9000}", 3)]
    [InlineData("(?<n>[a-z]{1,9000})", 10)]
    [InlineData("(?#{1,2}){1,9000}x", 9)]
    public void CostlyPatternsAreRefusedAtTheirPosition(string pattern, int offset)
    {
        var error = Assert.Single(TestPolicies.Errors(Policy(pattern)));
        Assert.Contains("too costly", error.Message, StringComparison.Ordinal);
        Assert.StartsWith("content.rules[0].pattern:", error.Message, StringComparison.Ordinal);
        Assert.Equal(5, error.Line);

        // The pattern starts in column 17 ("      pattern: '"); the diagnostic points at the offending repetition.
        Assert.Equal(17 + offset, error.Column);
    }

    [Fact]
    public void APatternLongerThan1024CharactersIsRefused()
    {
        var error = Assert.Single(TestPolicies.Errors(Policy(string.Join('|', Enumerable.Range(0, 300).Select(i => $"w{i}")))));
        Assert.Contains("longer than 1024", error.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string> Accepted => new()
    {
        "acme_[a-z0-9]{32}",
        "(\\d{1,3}\\.){3}\\d{1,3}",
        "(?i)TICKET-[0-9]{6}",
        "[a-z0-9]{1,100}z",
        "[a-z]{1,50}[a-z0-9]{1,50}z",
        "(a[a-z]{1,4}){1,8}z",
        "(a+)+z",
        "((a+)+)+z",
        "(a|aa)*z",
        "([a-z0-9-]+\\.)+z",
        "\\{1,9000\\}x",
        "[a-z]{20,}z",
    };

    [Theory]
    [MemberData(nameof(Accepted))]
    public void AcceptedPatternsStayCheapOnAdversarialInput(string pattern)
    {
        var rule = TestPolicies.Load(Policy(pattern)).Content.Rules[0];

        // The same engine the scanner uses, on input that keeps every repetition alive and never matches the end.
        var regex = new Regex(rule.Pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        var inputs = new[] { new string('a', 256 * 1024), string.Concat(Enumerable.Repeat("a1.", 80 * 1024)) };
        foreach (var input in inputs)
        {
            var sw = Stopwatch.StartNew();
            _ = regex.Count(input);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"{pattern}: {sw.Elapsed.TotalMilliseconds:F0} ms for 256 KiB");
        }
    }
}
