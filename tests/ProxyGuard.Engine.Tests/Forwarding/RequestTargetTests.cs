using ProxyGuard.Engine.Forwarding;

namespace ProxyGuard.Engine.Tests.Forwarding;

public sealed class RequestTargetTests
{
    [Theory]
    [InlineData("http://h.example/p?q=1", "http", "h.example", "/p", "q=1")]
    [InlineData("HTTPS://H.example:8443", "https", "H.example:8443", "/", "")]
    [InlineData("http://h.example?x=1", "http", "h.example", "/", "x=1")]
    [InlineData("http://h.example", "http", "h.example", "/", "")]
    [InlineData("http://[::1]:8080/a/../b?c", "http", "[::1]:8080", "/a/../b", "c")]
    [InlineData("http://h.example/%2e%2e//x?a=1?b", "http", "h.example", "/%2e%2e//x", "a=1?b")]
    public void TryParseAbsolute_splits_without_normalising(string raw, string scheme, string authority, string path, string query)
    {
        Assert.True(RequestTarget.TryParseAbsolute(raw, out var s, out var a, out var p, out var q));
        Assert.Equal(scheme, s);
        Assert.Equal(authority, a);
        Assert.Equal(path, p);
        Assert.Equal(query, q);
    }

    [Theory]
    [InlineData("/p")]
    [InlineData("*")]
    [InlineData("h.example:443")]
    [InlineData("ftp://h.example/")]
    [InlineData("ws://h.example/")]
    [InlineData("http:/h.example/")]
    [InlineData("http:///p")] // empty authority
    [InlineData("http://?q")]
    [InlineData("http://user@h.example/")] // userinfo
    [InlineData("http://user:pw@h.example/")]
    [InlineData("http://h.example/p#frag")] // fragment
    [InlineData("http://h.example#")]
    [InlineData("")]
    public void TryParseAbsolute_refuses(string raw)
    {
        Assert.False(RequestTarget.TryParseAbsolute(raw, out _, out _, out _, out _));
    }

    [Theory]
    [InlineData("/a?b?c", "/a", "b?c")]
    [InlineData("/a", "/a", "")]
    [InlineData("?", "", "")]
    [InlineData("/a?", "/a", "")]
    [InlineData("", "", "")]
    public void SplitPathAndQuery_splits_at_the_first_question_mark(string input, string path, string query)
    {
        RequestTarget.SplitPathAndQuery(input, out var p, out var q);
        Assert.Equal(path, p);
        Assert.Equal(query, q);
    }

    [Theory]
    [InlineData("h.example", "h.example", null)]
    [InlineData("h.example:80", "h.example", 80)]
    [InlineData("h.example:1", "h.example", 1)]
    [InlineData("h.example:65535", "h.example", 65535)]
    [InlineData("[::1]", "::1", null)]
    [InlineData("[2001:db8::1]:443", "2001:db8::1", 443)]
    public void TrySplitHostPort_accepts(string authority, string host, int? port)
    {
        Assert.True(RequestTarget.TrySplitHostPort(authority, out var h, out var p));
        Assert.Equal(host, h);
        Assert.Equal(port, p);
    }

    [Theory]
    [InlineData("")]
    [InlineData(":80")]
    [InlineData("h.example:")]
    [InlineData("h.example:0")]
    [InlineData("h.example:65536")]
    [InlineData("h.example:123456")]
    [InlineData("h.example:+80")]
    [InlineData("h.example:8 0")]
    [InlineData("h.example:80:80")]
    [InlineData("::1")] // IPv6 must be bracketed
    [InlineData("[::1")]
    [InlineData("[::1]x")]
    [InlineData("[::1]:")]
    [InlineData("[::1]:0")]
    [InlineData("[::1]:99999")]
    [InlineData("[::1]:http")]
    public void TrySplitHostPort_refuses(string authority) =>
        Assert.False(RequestTarget.TrySplitHostPort(authority, out _, out _));

    [Fact]
    public void Authority_brackets_ipv6_hosts()
    {
        Assert.Equal("[::1]:443", new RequestTarget("https", "::1", 443, "/", "").Authority);
        Assert.Equal("https://h.example:8443", new RequestTarget("https", "h.example", 8443, "/", "").DestinationPrefix);
    }
}
