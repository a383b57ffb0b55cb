namespace ProxyGuard.Audit.Tests;

public class PathRedactionTests
{
    [Theory]
    [InlineData("/a?x=1&y=secret", "/a?x=&y=")]
    [InlineData("/a", "/a")]
    [InlineData("/", "/")]
    [InlineData("/a?", "/a?")]
    [InlineData("/a?token", "/a?")]
    [InlineData("/a?sk-live-123&x=1", "/a?&x=")]
    [InlineData("/a?x==1", "/a?x=")]
    [InlineData("/a?x=1#frag", "/a?x=")]
    [InlineData("/a#frag?x=1", "/a")]
    [InlineData("/v1/chat?api_key=sk-abc&&model=gpt", "/v1/chat?api_key=&&model=")]
    [InlineData("https://user:pass@example.com/p?q=1", "/p?q=")]
    [InlineData("http://example.com", "/")]
    [InlineData("/a\r\nb?x=\n", "/a%0D%0Ab?x=")]
    public void Strips_query_values(string input, string expected)
    {
        Assert.Equal(expected, PathRedaction.StripQueryValues(input));
    }

    [Fact]
    public void Returns_the_same_instance_when_nothing_changes()
    {
        const string path = "/v1/models/list";
        Assert.Same(path, PathRedaction.StripQueryValues(path));
    }

    [Fact]
    public void Truncates_long_paths_with_a_marker()
    {
        var path = "/" + new string('a', 10_000);
        var result = PathRedaction.StripQueryValues(path);
        Assert.Equal(PathRedaction.MaxLength, result.Length);
        Assert.EndsWith(PathRedaction.TruncationMarker, result, StringComparison.Ordinal);
    }

    [Fact]
    public void Long_queries_are_bounded_and_hold_no_values()
    {
        var query = string.Join('&', Enumerable.Range(0, 2000).Select(i => $"k{i}=SECRET{i}"));
        var result = PathRedaction.StripQueryValues("/x?" + query);
        Assert.True(result.Length <= PathRedaction.MaxLength);
        Assert.DoesNotContain("SECRET", result, StringComparison.Ordinal);
        Assert.EndsWith(PathRedaction.TruncationMarker, result, StringComparison.Ordinal);
    }

    [Fact]
    public void Does_not_split_a_surrogate_pair_when_truncating()
    {
        var path = "/" + string.Concat(Enumerable.Repeat("\U0001F600", 3000));
        var result = PathRedaction.StripQueryValues(path);
        var kept = result[..^PathRedaction.TruncationMarker.Length];
        Assert.False(char.IsHighSurrogate(kept[^1]));
    }
}
