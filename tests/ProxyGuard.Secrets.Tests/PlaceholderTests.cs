using System.Text.RegularExpressions;

namespace ProxyGuard.Secrets.Tests;

public sealed partial class PlaceholderTests
{
    private static readonly byte[] KeyA = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] KeyB = Enumerable.Range(100, 32).Select(i => (byte)i).ToArray();

    [GeneratedRegex("^PG_[A-Z0-9_]+_[A-Z2-7]{16}$")]
    private static partial Regex Format();

    [Fact]
    public void DerivedFormat()
    {
        var placeholder = Placeholders.Derive("github", KeyA);
        Assert.Matches(Format(), placeholder);
        Assert.StartsWith("PG_GITHUB_", placeholder, StringComparison.Ordinal);
        Assert.Equal("PG_".Length + "GITHUB_".Length + 16, placeholder.Length);
        Assert.StartsWith("PG_NPM_REGISTRY_", Placeholders.Derive("npm-registry", KeyA), StringComparison.Ordinal);
        Assert.StartsWith("PG_OPENAI_KEY_2_", Placeholders.Derive("openai.key 2", KeyA), StringComparison.Ordinal);
    }

    [Fact]
    public void StableForNameAndKey() =>
        Assert.Equal(Placeholders.Derive("github", KeyA), Placeholders.Derive("github", KeyA.ToArray()));

    [Fact]
    public void UniquePerNameAndKey()
    {
        var names = Enumerable.Range(0, 500).Select(i => "secret" + i).ToList();
        var placeholders = names.Select(n => Placeholders.Derive(n, KeyA)).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(names.Count, placeholders.Count);
        Assert.NotEqual(Placeholders.Derive("github", KeyA), Placeholders.Derive("github", KeyB));
        // Names that normalise alike still differ by their MAC.
        Assert.NotEqual(Placeholders.Derive("a-b", KeyA), Placeholders.Derive("a_b", KeyA));
    }

    [Fact]
    public void SafeInUrlsHeadersAndBasicAuth()
    {
        var placeholder = Placeholders.Derive("github", KeyA);
        Assert.Equal(placeholder, Uri.EscapeDataString(placeholder));
        Assert.DoesNotContain(':', placeholder);
    }

    [Fact]
    public void ShortKeyIsRejected() =>
        Assert.Throws<ArgumentException>(() => Placeholders.Derive("github", new byte[8]));

    [Fact]
    public void ExplicitPlaceholderValidation()
    {
        Assert.Null(Placeholders.ValidateExplicit("PG_SECRET_GITHUB_7f3a9c"));
        Assert.NotNull(Placeholders.ValidateExplicit("short"));
        Assert.NotNull(Placeholders.ValidateExplicit("has space in it ok"));
        Assert.NotNull(Placeholders.ValidateExplicit("has:colon:inside:it"));

        // The same rule as the policy validator (docs/policy.md): 16 to 256 of [A-Za-z0-9_], no '-'.
        Assert.NotNull(Placeholders.ValidateExplicit("PG_TWELVE_CH"));
        Assert.NotNull(Placeholders.ValidateExplicit("pg-secret-github-7f3a9c"));
        Assert.Null(Placeholders.ValidateExplicit(new string('A', 256)));
        Assert.NotNull(Placeholders.ValidateExplicit(new string('A', 257)));
    }

    [Fact]
    public void GeneratedKeysDiffer() =>
        Assert.NotEqual(Placeholders.GenerateInstallationKey(), Placeholders.GenerateInstallationKey());
}
