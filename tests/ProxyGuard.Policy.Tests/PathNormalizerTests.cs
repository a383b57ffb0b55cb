namespace ProxyGuard.Policy.Tests;

public sealed class PathNormalizerTests
{
    [Theory]
    [InlineData("", "/")]
    [InlineData("/", "/")]
    [InlineData("/a/b", "/a/b")]
    [InlineData("/a/b/", "/a/b/")]
    [InlineData("/a/b?x=1&y=/..", "/a/b")]
    [InlineData("/a/b#frag", "/a/b")]
    [InlineData("/a/./b", "/a/b")]
    [InlineData("/a/b/../c", "/a/c")]
    [InlineData("/a/b/..", "/a/")]
    [InlineData("/a/b/.", "/a/b/")]
    [InlineData("/a/b/c/../../d", "/a/d")]
    [InlineData("/%61%62%63", "/abc")]
    [InlineData("/%7e%2d%5F%2e", "/~-_.")]
    [InlineData("/a%20b", "/a%20b")]
    [InlineData("/a%3ab", "/a%3Ab")]
    [InlineData("/caf%c3%a9", "/caf%C3%A9")]
    [InlineData("/café", "/caf%C3%A9")]
    [InlineData("/a b", "/a%20b")]
    [InlineData("/a\"b", "/a%22b")]
    [InlineData("/%25", "/%25")]
    [InlineData("/100%25sure", "/100%25sure")]
    [InlineData("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;=")]
    [InlineData("/a/.hidden/..x", "/a/.hidden/..x")]
    public void Normalizes(string raw, string expected)
    {
        var result = PathNormalizer.Normalize(raw);
        Assert.Equal(expected, result.Path);
        Assert.False(result.Ambiguous, $"'{raw}' should not be ambiguous");
    }

    [Theory]
    [InlineData("/a%2Fb")]
    [InlineData("/a%2fb")]
    [InlineData("/a%5Cb")]
    [InlineData("/a%5cb")]
    [InlineData("/a\\b")]
    [InlineData("/a/%2E%2E/b")]
    [InlineData("/a/%2e%2e/b")]
    [InlineData("/a/.%2E/b")]
    [InlineData("/a/%2E/b")]
    [InlineData("/a%00b")]
    [InlineData("/a\0b")]
    [InlineData("/a%0Ab")]
    [InlineData("/a%0d%0ab")]
    [InlineData("/a\tb")]
    [InlineData("/a\u007Fb")]
    [InlineData("/a%7Fb")]
    [InlineData("/a%252Fb")]
    [InlineData("/a%252e%252e/b")]
    [InlineData("/a%25%32%46b")]
    [InlineData("/a%zzb")]
    [InlineData("/a%2")]
    [InlineData("/a%")]
    [InlineData("//a")]
    [InlineData("/a//b")]
    [InlineData("/..")]
    [InlineData("/../a")]
    [InlineData("/a/../../b")]
    [InlineData("a/b")]
    [InlineData("*")]
    public void FlagsAmbiguous(string raw) => Assert.True(PathNormalizer.Normalize(raw).Ambiguous, $"'{raw}' should be ambiguous");
}
