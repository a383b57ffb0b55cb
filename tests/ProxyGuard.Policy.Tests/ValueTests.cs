namespace ProxyGuard.Policy.Tests;

public sealed class ValueTests
{
    [Theory]
    [InlineData("0", 0L)]
    [InlineData("1048576", 1048576L)]
    [InlineData("100B", 100L)]
    [InlineData("512KiB", 512L * 1024)]
    [InlineData("8MiB", 8L * 1024 * 1024)]
    [InlineData("1GiB", 1024L * 1024 * 1024)]
    public void ParsesSizes(string text, long bytes)
    {
        Assert.True(PolicyValues.TryParseSize(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("8MB")]
    [InlineData("8 MiB")]
    [InlineData("8mib")]
    [InlineData("-1")]
    [InlineData("1.5MiB")]
    [InlineData("")]
    [InlineData("99999999999999999999GiB")]
    public void RejectsBadSizes(string text) => Assert.False(PolicyValues.TryParseSize(text, out _));

    [Theory]
    [InlineData("250ms", 250)]
    [InlineData("30s", 30_000)]
    [InlineData("5m", 300_000)]
    [InlineData("1h", 3_600_000)]
    public void ParsesDurations(string text, long milliseconds)
    {
        Assert.True(PolicyValues.TryParseDuration(text, out var parsed));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), parsed);
    }

    [Theory]
    [InlineData("30")]
    [InlineData("1d")]
    [InlineData("1h30m")]
    [InlineData("-5s")]
    [InlineData("5 s")]
    public void RejectsBadDurations(string text) => Assert.False(PolicyValues.TryParseDuration(text, out _));

    [Theory]
    [InlineData("env:GITHUB_TOKEN", SecretReferenceKind.Env, "GITHUB_TOKEN", null)]
    [InlineData("env:_x1", SecretReferenceKind.Env, "_x1", null)]
    [InlineData("file:/run/secrets/github", SecretReferenceKind.File, "/run/secrets/github", null)]
    [InlineData("file:secrets/token", SecretReferenceKind.File, "secrets/token", null)]
    [InlineData("vault:secret/data/ci/github#token", SecretReferenceKind.Vault, "secret/data/ci/github", "token")]
    [InlineData("vault:kv/data/a/b/c#f.1", SecretReferenceKind.Vault, "kv/data/a/b/c", "f.1")]
    public void ParsesSecretReferences(string text, SecretReferenceKind kind, string target, string? field)
    {
        Assert.True(SecretReference.TryParse(text, out var reference, out var error), error);
        Assert.Equal(new SecretReference(kind, target, field), reference);
        Assert.Equal(text, reference!.ToString());
    }

    [Theory]
    [InlineData("ghp_literal")]
    [InlineData("env:")]
    [InlineData("env:A-B")]
    [InlineData("file:")]
    [InlineData("file:/dir/")]
    [InlineData("vault:secret/ci#token")]
    [InlineData("vault:secret/data/ci")]
    [InlineData("vault:secret/data/ci#")]
    [InlineData("vault:/data/ci#x")]
    [InlineData("ENV:X")]
    public void RejectsBadSecretReferences(string text) => Assert.False(SecretReference.TryParse(text, out _, out _));

    [Theory]
    [InlineData("com", true)]
    [InlineData("xyz", true)]
    [InlineData("co.uk", true)]
    [InlineData("github.io", true)]
    [InlineData("s3.amazonaws.com", true)]
    [InlineData("foo.kawasaki.jp", true)]
    [InlineData("city.kawasaki.jp", false)]
    [InlineData("example.com", false)]
    [InlineData("github.com", false)]
    [InlineData("example.co.uk", false)]
    public void KnowsPublicSuffixes(string name, bool isSuffix) => Assert.Equal(isSuffix, PublicSuffixList.IsPublicSuffix(name));

    [Theory]
    [InlineData("amazonaws.com", true)]
    [InlineData("kawasaki.jp", true)]
    [InlineData("github.com", false)]
    [InlineData("example.com", false)]
    [InlineData("acme.github.io", false)]
    public void KnowsWhereWildcardsSpanSuffixes(string suffix, bool spans) => Assert.Equal(spans, PublicSuffixList.SpannedSuffix(suffix) is not null);

    [Fact]
    public void EmbeddedListIsComplete() => Assert.True(PublicSuffixList.Count > 9000);
}
