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
}
