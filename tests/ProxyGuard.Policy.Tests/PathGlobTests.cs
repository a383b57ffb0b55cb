namespace ProxyGuard.Policy.Tests;

public sealed class PathGlobTests
{
    [Theory]
    [InlineData("/", "/", true)]
    [InlineData("/", "/a", false)]
    [InlineData("/a", "/a", true)]
    [InlineData("/a", "/A", false)]
    [InlineData("/a", "/a/", false)]
    [InlineData("/a/", "/a/", true)]
    [InlineData("/a/*", "/a/b", true)]
    [InlineData("/a/*", "/a/", true)]
    [InlineData("/a/*", "/a/b/c", false)]
    [InlineData("/a/*", "/a", false)]
    [InlineData("/a/*/c", "/a/b/c", true)]
    [InlineData("/a/*/c", "/a/b/x/c", false)]
    [InlineData("/a/b*", "/a/bcd", true)]
    [InlineData("/a/*.git", "/a/app.git", true)]
    [InlineData("/a/*.git", "/a/app", false)]
    [InlineData("/a/*x*y", "/a/zzxzzy", true)]
    [InlineData("/a/**", "/a", true)]
    [InlineData("/a/**", "/a/", true)]
    [InlineData("/a/**", "/a/b/c/d", true)]
    [InlineData("/a/**", "/ab", false)]
    [InlineData("/a/**", "/b/a", false)]
    [InlineData("/**", "/", true)]
    [InlineData("/**", "/anything/at/all", true)]
    [InlineData("/**/x", "/x", true)]
    [InlineData("/**/x", "/a/b/x", true)]
    [InlineData("/**/x", "/a/b/x/y", false)]
    [InlineData("/a/**/b/**/c", "/a/1/b/2/3/c", true)]
    [InlineData("/a/**/b/**/c", "/a/b/c", true)]
    [InlineData("/a/**/b/**/c", "/a/c", false)]
    [InlineData("/v1/messages", "/v1/messages", true)]
    [InlineData("/%7Euser/*", "/~user/x", true)]
    public void Matches(string pattern, string path, bool expected)
    {
        Assert.True(PathGlob.TryCompile(pattern, out var glob, out var error), error);
        Assert.Equal(expected, glob!.IsMatch(path));
    }

    [Theory]
    [InlineData("a/b", "must start with '/'")]
    [InlineData("", "must start with '/'")]
    [InlineData("/a?b", "'?'")]
    [InlineData("/a#b", "'?' or '#'")]
    [InlineData("/a/[ab]", "only '*' and '**'")]
    [InlineData("/a/{b,c}", "only '*' and '**'")]
    [InlineData("/a/**b", "whole segment")]
    [InlineData("/a/b**/c", "whole segment")]
    [InlineData("/a%2Fb", "ambiguous")]
    [InlineData("/a//b", "ambiguous")]
    [InlineData("/a/../../b", "ambiguous")]
    public void RejectsBadGlobs(string pattern, string fragment)
    {
        Assert.False(PathGlob.TryCompile(pattern, out _, out var error));
        Assert.Contains(fragment, error, StringComparison.Ordinal);
    }

    [Fact]
    public void ManyDoubleStarsStayFast()
    {
        Assert.True(PathGlob.TryCompile("/" + string.Join('/', Enumerable.Repeat("**", 30)) + "/z", out var glob, out _));
        var path = "/" + string.Join('/', Enumerable.Repeat("a", 200));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.False(glob!.IsMatch(path));
        Assert.True(watch.ElapsedMilliseconds < 1000);
    }
}
