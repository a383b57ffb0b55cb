namespace ProxyGuard.Policy.Tests;

public sealed class HostNormalizerTests
{
    [Theory]
    [InlineData("example.com", "example.com")]
    [InlineData("Example.COM", "example.com")]
    [InlineData("example.com.", "example.com")]
    [InlineData("API.GitHub.com.", "api.github.com")]
    [InlineData("under_score.example.com", "under_score.example.com")]
    [InlineData("localhost", "localhost")]
    // IDN → punycode
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    [InlineData("BÜCHER.example", "xn--bcher-kva.example")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("例え.jp", "xn--r8jz45g.jp")]
    [InlineData("example\u3002com", "example.com")]
    // IPv4 in every inet_aton spelling
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("2130706433", "127.0.0.1")]
    [InlineData("0x7f000001", "127.0.0.1")]
    [InlineData("0X7F000001", "127.0.0.1")]
    [InlineData("017700000001", "127.0.0.1")]
    [InlineData("0177.0.0.1", "127.0.0.1")]
    [InlineData("0x7f.0.0.1", "127.0.0.1")]
    [InlineData("0x7f.0x0.0x0.0x1", "127.0.0.1")]
    [InlineData("127.1", "127.0.0.1")]
    [InlineData("127.0.1", "127.0.0.1")]
    [InlineData("127.0.0.1.", "127.0.0.1")]
    [InlineData("169.254.169.254", "169.254.169.254")]
    [InlineData("0251.0376.0251.0376", "169.254.169.254")]
    [InlineData("0xa9fea9fe", "169.254.169.254")]
    [InlineData("2852039166", "169.254.169.254")]
    [InlineData("169.16689662", "169.254.169.254")]
    [InlineData("0", "0.0.0.0")]
    [InlineData("010.0.0.1", "8.0.0.1")]
    [InlineData("１２７.０.０.１", "127.0.0.1")]
    // IPv6
    [InlineData("[::1]", "::1")]
    [InlineData("::1", "::1")]
    [InlineData("[0:0:0:0:0:0:0:1]", "::1")]
    [InlineData("[2001:DB8::0:1]", "2001:db8::1")]
    [InlineData("[fd00:ec2::254]", "fd00:ec2::254")]
    [InlineData("[::ffff:127.0.0.1]", "127.0.0.1")]
    [InlineData("[::ffff:7f00:1]", "127.0.0.1")]
    [InlineData("[::ffff:a9fe:a9fe]", "169.254.169.254")]
    public void Normalizes(string input, string expected)
    {
        Assert.True(HostNormalizer.TryNormalize(input, out var normalized, out var error), error);
        Assert.Equal(expected, normalized);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData(".", "empty")]
    [InlineData("example..com", "empty label")]
    [InlineData(".example.com", "empty label")]
    [InlineData("example.com..", "empty label")]
    [InlineData("[fe80::1%eth0]", "zone")]
    [InlineData("fe80::1%25eth0", "zone")]
    [InlineData("[fe80::1%25eth0]", "zone")]
    [InlineData("exa%6dple.com", "percent")]
    [InlineData("exa mple.com", "space")]
    [InlineData("exa\tmple.com", "control")]
    [InlineData("example.com\0", "control")]
    [InlineData("exa!mple.com", "invalid character")]
    [InlineData("exa*mple.com", "invalid character")]
    [InlineData("user@example.com", "invalid character")]
    [InlineData("example.com/path", "invalid character")]
    [InlineData("256.0.0.1", "IPv4")]
    [InlineData("1.2.3.4.5", "IPv4")]
    [InlineData("08.0.0.1", "IPv4")]
    [InlineData("0x100000000", "IPv4")]
    [InlineData("4294967296", "IPv4")]
    [InlineData("1.16777216", "IPv4")]
    [InlineData("1.2.65536", "IPv4")]
    [InlineData("example.123", "IPv4")]
    [InlineData("[::1", "unterminated")]
    [InlineData("[]", "unterminated")]
    [InlineData("[1::2::3]", "IPv6")]
    [InlineData("[example.com]", "IPv6")]
    [InlineData("example.com:443", "IPv6")]
    [InlineData("xn--zz.example", "punycode")]
    public void Rejects(string input, string errorFragment)
    {
        Assert.False(HostNormalizer.TryNormalize(input, out _, out var error));
        Assert.NotNull(error);
        Assert.Contains(errorFragment, error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void RejectsOverLongNames()
    {
        var label64 = new string('a', 64);
        Assert.False(HostNormalizer.TryNormalize(label64 + ".example.com", out _, out var error));
        Assert.Contains("63", error, StringComparison.Ordinal);

        var label63 = new string('a', 63);
        Assert.True(HostNormalizer.TryNormalize(label63 + ".example.com", out _, out _));

        var long254 = string.Join('.', Enumerable.Repeat(new string('a', 49), 5)) + ".abcd"; // 5*50 + 4 = 254
        Assert.Equal(254, long254.Length);
        Assert.False(HostNormalizer.TryNormalize(long254, out _, out error));
        Assert.Contains("253", error, StringComparison.Ordinal);
        Assert.True(HostNormalizer.TryNormalize(long254[1..], out _, out _));
        Assert.True(HostNormalizer.TryNormalize(long254[1..] + ".", out _, out _));
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("example.com", false)]
    [InlineData("a1", false)]
    public void DetectsAddresses(string normalized, bool isAddress) =>
        Assert.Equal(isAddress, HostNormalizer.TryGetAddress(normalized, out _));
}
