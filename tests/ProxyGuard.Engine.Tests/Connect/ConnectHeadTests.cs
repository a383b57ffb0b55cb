using System.Buffers;
using System.Text;
using ProxyGuard.Engine.Connect;

namespace ProxyGuard.Engine.Tests.Connect;

public sealed class ConnectHeadTests
{
    private static bool Parse(string head, out ConnectHead? result, out string error) =>
        ConnectHead.TryParse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(head)), out result, out error);

    private static ConnectHead Valid(string head)
    {
        Assert.True(Parse(head, out var result, out var error), error);
        Assert.Equal(string.Empty, error);
        return result!;
    }

    private static string Invalid(string head)
    {
        Assert.False(Parse(head, out var result, out var error));
        Assert.Null(result);
        Assert.NotEmpty(error);
        return error;
    }

    [Fact]
    public void Minimal_head_parses_host_and_port()
    {
        var head = Valid("CONNECT api.example.com:443 HTTP/1.1\r\n\r\n");
        Assert.Equal("api.example.com", head.Host);
        Assert.Equal(443, head.Port);
        Assert.Null(head.ProxyAuthorization);
        Assert.Null(head.UserAgent);
    }

    [Fact]
    public void Headers_are_read_case_insensitively_and_trimmed()
    {
        var head = Valid("CONNECT Example.COM:8443 HTTP/1.0\r\nHost: example.com:8443\r\nproxy-authorization: \tBasic dTpw \t\r\nUSER-AGENT:  curl/8.5\r\n\r\n");
        Assert.Equal("Example.COM", head.Host); // not normalised here
        Assert.Equal(8443, head.Port);
        Assert.Equal("Basic dTpw", head.ProxyAuthorization);
        Assert.Equal("curl/8.5", head.UserAgent);
    }

    [Fact]
    public void Ipv6_literal_loses_its_brackets()
    {
        var head = Valid("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n");
        Assert.Equal("2001:db8::1", head.Host);
        Assert.Equal(443, head.Port);
    }

    [Theory]
    [InlineData("1", 1)]
    [InlineData("65535", 65535)]
    public void Port_bounds_are_accepted(string port, int expected) =>
        Assert.Equal(expected, Valid($"CONNECT h.example:{port} HTTP/1.1\r\n\r\n").Port);

    [Fact]
    public void Content_length_zero_is_tolerated() =>
        Valid("CONNECT h.example:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n");

    [Fact]
    public void Multi_segment_sequence_parses_like_a_single_one()
    {
        var first = new Segment(Encoding.ASCII.GetBytes("CONNECT h.exa"));
        var last = first.Append(Encoding.ASCII.GetBytes("mple:443 HTTP/1.1\r\nUser-Agent: x\r\n\r\n"));
        Assert.True(ConnectHead.TryParse(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length), out var head, out var error), error);
        Assert.Equal("h.example", head!.Host);
        Assert.Equal("x", head.UserAgent);
    }

    [Theory]
    [InlineData("CONNECT h.example:443 HTTP/1.1\n\n", "incomplete")] // bare LF line ends
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\n", "incomplete")] // no empty line
    [InlineData("CONNECT h.example:443 HTTP/1.1\nHost: h\r\n\r\n", "bare CR or LF")]
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare CR or LF")]
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\n\n\r\n\r\n", "bare CR or LF")]
    public void Bare_cr_or_lf_is_refused(string head, string expected) => Assert.Contains(expected, Invalid(head), StringComparison.Ordinal);

    [Theory]
    [InlineData("CONNECT  h.example:443 HTTP/1.1\r\n\r\n")] // two spaces
    [InlineData("CONNECT h.example:443  HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT h.example:443 HTTP/1.1 \r\n\r\n")] // trailing space
    [InlineData(" CONNECT h.example:443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT\th.example:443\tHTTP/1.1\r\n\r\n")]
    [InlineData("connect h.example:443 HTTP/1.1\r\n\r\n")] // method is case-sensitive
    [InlineData("GET h.example:443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT h.example:443\r\n\r\n")] // HTTP/0.9 style
    [InlineData("\r\n\r\n")]
    public void Malformed_request_line_is_refused(string head) =>
        Assert.Equal("malformed CONNECT request line", Invalid(head));

    [Theory]
    [InlineData("HTTP/2.0")]
    [InlineData("HTTP/1.2")]
    [InlineData("http/1.1")]
    [InlineData("HTTP/1.1x")]
    public void Unsupported_version_is_refused(string version) =>
        Assert.Equal("unsupported HTTP version in CONNECT", Invalid($"CONNECT h.example:443 {version}\r\n\r\n"));

    [Theory]
    [InlineData("h.example")] // missing port
    [InlineData("h.example:")] // empty port
    [InlineData(":443")] // empty host
    [InlineData("h.example:0")]
    [InlineData("h.example:65536")]
    [InlineData("h.example:99999")]
    [InlineData("h.example:000443")] // six digits
    [InlineData("h.example:+443")]
    [InlineData("h.example:-1")]
    [InlineData("h.example:44a")]
    [InlineData("h.example:443:443")]
    [InlineData("user:pw@h.example:443")] // userinfo (two colons)
    [InlineData("2001:db8::1:443")] // unbracketed IPv6
    [InlineData("[2001:db8::1]")] // bracketed, no port
    [InlineData("[2001:db8::1]443")]
    [InlineData("[2001:db8::1:443")] // unclosed
    [InlineData("[]:443")]
    [InlineData("http://h.example:443")]
    public void Bad_authority_is_refused(string authority) =>
        Assert.Equal("the CONNECT target must be host:port", Invalid($"CONNECT {authority} HTTP/1.1\r\n\r\n"));

    [Theory]
    [InlineData("user@h.example:443")]
    [InlineData("h.example/path:443")]
    [InlineData("h exa:443")]
    public void Odd_hosts_are_left_to_the_host_normaliser(string authority)
    {
        // ConnectHead only splits host:port; the space case breaks the request line.
        var ok = Parse($"CONNECT {authority} HTTP/1.1\r\n\r\n", out var head, out _);
        if (authority.Contains(' ', StringComparison.Ordinal))
        {
            Assert.False(ok);
        }
        else
        {
            Assert.True(ok);
            Assert.Equal(authority[..authority.LastIndexOf(':')], head!.Host);
        }
    }

    [Theory]
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\nHost: a\r\n b\r\n\r\n")] // folding with space
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n")] // folding with tab
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\n Host: a\r\n\r\n")]
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\nHost: a\r\n\r\n\r\n")] // empty header line before the end
    public void Folding_and_empty_lines_are_refused(string head) =>
        Assert.Equal("obsolete line folding or an empty header line in the CONNECT head", Invalid(head));

    [Theory]
    [InlineData("NoColon")]
    [InlineData(": value")]
    [InlineData("Bad Name: value")]
    [InlineData("Bad\"Name: v")]
    [InlineData("Host : a")] // whitespace before the colon
    [InlineData("Na(me): v")]
    public void Malformed_header_lines_are_refused(string line) =>
        Assert.Equal("malformed header line in the CONNECT head", Invalid($"CONNECT h.example:443 HTTP/1.1\r\n{line}\r\n\r\n"));

    [Theory]
    [InlineData("Content-Length: 5")]
    [InlineData("content-length: 00")]
    [InlineData("Transfer-Encoding: chunked")]
    [InlineData("TRANSFER-ENCODING: identity")]
    public void Body_framing_is_refused(string line) =>
        Assert.Equal("a CONNECT request must not carry a body", Invalid($"CONNECT h.example:443 HTTP/1.1\r\n{line}\r\n\r\n"));

    [Fact]
    public void Duplicate_proxy_authorization_is_refused_case_insensitively() =>
        Assert.Equal("duplicate Proxy-Authorization header",
            Invalid("CONNECT h.example:443 HTTP/1.1\r\nProxy-Authorization: Basic YTpi\r\nproxy-authorization: Basic Yzpk\r\n\r\n"));

    [Theory]
    [InlineData("CONNECT h.exämple:443 HTTP/1.1\r\n\r\n")]
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\nUser-Agent: caf\u00e9\r\n\r\n")]
    [InlineData("CONNECT h.example:443 HTTP/1.1\r\nX: a\0b\r\n\r\n")]
    [InlineData("CONNECT h.ex\0ample:443 HTTP/1.1\r\n\r\n")]
    public void Nul_and_non_ascii_are_refused(string head) =>
        Assert.Equal("the CONNECT head contains NUL or non-ASCII bytes", Invalid(head));

    [Fact]
    public void Utf8_bytes_are_refused_not_decoded()
    {
        var bytes = Encoding.UTF8.GetBytes("CONNECT xn--.example:443 HTTP/1.1\r\nX: \u2028\r\n\r\n");
        Assert.False(ConnectHead.TryParse(new ReadOnlySequence<byte>(bytes), out _, out var error));
        Assert.Equal("the CONNECT head contains NUL or non-ASCII bytes", error);
    }

    [Fact]
    public void Huge_head_is_parsed_without_error_when_well_formed()
    {
        // The size limit is the caller's (ProxyLimits.MaxConnectHeadBytes); the parser itself stays correct.
        var many = string.Concat(Enumerable.Range(0, 2000).Select(i => $"X-H{i}: {new string('v', 40)}\r\n"));
        var head = Valid($"CONNECT h.example:443 HTTP/1.1\r\n{many}User-Agent: last\r\n\r\n");
        Assert.Equal("last", head.UserAgent);
    }

    [Fact]
    public void Huge_malformed_head_fails_fast()
    {
        var many = string.Concat(Enumerable.Range(0, 5000).Select(_ => "X: y\r\n"));
        Assert.Equal("obsolete line folding or an empty header line in the CONNECT head",
            Invalid($"CONNECT h.example:443 HTTP/1.1\r\n{many}\r\n\r\n\r\n"));
    }

    [Fact]
    public void Prefix_is_the_connect_method_and_a_space() => Assert.Equal("CONNECT "u8.ToArray(), ConnectHead.Prefix.ToArray());

    [Theory]
    [InlineData("h.example:443", "h.example", 443)]
    [InlineData("[::1]:8080", "::1", 8080)]
    [InlineData("1.2.3.4:1", "1.2.3.4", 1)]
    public void TrySplitAuthority_accepts(string authority, string host, int port)
    {
        Assert.True(ConnectHead.TrySplitAuthority(authority, out var h, out var p));
        Assert.Equal(host, h);
        Assert.Equal(port, p);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] data) => Memory = data;

        public Segment Append(byte[] data)
        {
            var next = new Segment(data) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
