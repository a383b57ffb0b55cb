using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;

namespace ProxyGuard.Engine.Tests.Pipeline.Stages;

public sealed class StrictHttpStageTests
{
    private static (Denial? Denial, Microsoft.AspNetCore.Http.HttpContext Context) Run(
        string method = "POST", string protocol = "HTTP/1.1", Runtime.ProxySnapshot? snapshot = null, params (string, string)[] headers)
    {
        var context = Context(method, "/x", Tunnel(), protocol: protocol, headers: headers);
        var denial = new StrictHttpStage().RunAsync(Exchange(snapshot ?? TestSnapshots.Enforce, context)).AsTask().GetAwaiter().GetResult();
        return (denial, context);
    }

    private static void AssertDenied(Denial? denial, string reason, int status)
    {
        Assert.NotNull(denial);
        Assert.Equal(reason, denial.Reason);
        Assert.Equal(status, denial.Status);
        Assert.Equal("protocol", denial.Rule);
    }

    [Fact]
    public void Ordinary_request_passes()
    {
        var (denial, context) = Run(headers: [("Content-Length", "5"), ("Host", "api.example.com")]);
        Assert.Null(denial);
        Assert.False(context.Response.Headers.ContainsKey("Connection"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("7")]
    [InlineData("123456789012345678")] // 18 digits
    public void Canonical_content_length_passes(string value) => Assert.Null(Run(headers: ("Content-Length", value)).Denial);

    [Fact]
    public void Content_length_with_transfer_encoding_is_ambiguous_and_closes()
    {
        var (denial, context) = Run(headers: [("Content-Length", "5"), ("Transfer-Encoding", "chunked")]);
        AssertDenied(denial, "ambiguous-length", 400);
        Assert.Equal("close", context.Response.Headers.Connection.ToString());
    }

    [Fact]
    public void Transfer_encoding_on_http10_is_ambiguous() =>
        AssertDenied(Run(protocol: "HTTP/1.0", headers: ("Transfer-Encoding", "chunked")).Denial, "ambiguous-length", 400);

    [Fact]
    public void Transfer_encoding_alone_on_http11_passes() => Assert.Null(Run(headers: ("Transfer-Encoding", "chunked")).Denial);

    [Theory]
    [InlineData("+5")]
    [InlineData("-5")]
    [InlineData("05")]
    [InlineData("00")]
    [InlineData("1,1")]
    [InlineData("5 ")]
    [InlineData(" 5")]
    [InlineData("0x5")]
    [InlineData("")]
    [InlineData("1234567890123456789")] // 19 digits
    [InlineData("５")] // full-width digit
    public void Non_canonical_content_length_is_refused(string value) =>
        AssertDenied(Run(headers: ("Content-Length", value)).Denial, "ambiguous-length", 400);

    [Fact]
    public void Two_content_length_values_are_refused_even_when_equal() =>
        AssertDenied(Run(headers: [("Content-Length", "1"), ("Content-Length", "1")]).Denial, "ambiguous-length", 400);

    [Theory]
    [InlineData("Upgrade", "h2c")]
    [InlineData("Upgrade", "websocket, H2C")]
    [InlineData("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
    public void H2c_is_refused(string name, string value) => AssertDenied(Run(method: "GET", headers: (name, value)).Denial, "h2c-not-allowed", 403);

    [Fact]
    public void Websocket_upgrade_is_not_a_strict_http_matter() => Assert.Null(Run(method: "GET", headers: ("Upgrade", "websocket")).Denial);

    [Fact]
    public void Connect_inside_a_connection_is_refused()
    {
        var (denial, context) = Run(method: "CONNECT");
        AssertDenied(denial, "connect-not-allowed-here", 405);
        Assert.Equal("close", context.Response.Headers.Connection.ToString());
    }

    /// <summary>An HTTP/2 extended CONNECT (RFC 8441) as Kestrel presents it: method CONNECT, the :protocol in a feature.</summary>
    private static (Denial? Denial, Microsoft.AspNetCore.Http.HttpContext Context) RunExtendedConnect(string protocol, bool inTunnel)
    {
        var context = Context("CONNECT", "/chat", inTunnel ? Tunnel() : null, protocol: "HTTP/2", headers: ("sec-websocket-version", "13"));
        context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpExtendedConnectFeature>(new ExtendedConnect(protocol));
        var denial = new StrictHttpStage().RunAsync(Exchange(TestSnapshots.Enforce, context)).AsTask().GetAwaiter().GetResult();
        return (denial, context);
    }

    [Theory]
    [InlineData("websocket")]
    [InlineData("WebSocket")]
    public void Http2_websocket_extended_connect_inside_a_tunnel_passes(string protocol)
    {
        var (denial, context) = RunExtendedConnect(protocol, inTunnel: true);
        Assert.Null(denial);
        Assert.True(StrictHttpStage.IsWebSocketConnect(context));
    }

    [Theory]
    [InlineData("connect-udp")]
    [InlineData("webtransport")]
    [InlineData("")]
    public void Extended_connect_for_another_protocol_is_refused(string protocol) =>
        AssertDenied(RunExtendedConnect(protocol, inTunnel: true).Denial, "connect-not-allowed-here", 405);

    [Fact]
    public void Websocket_extended_connect_outside_a_tunnel_is_refused() =>
        AssertDenied(RunExtendedConnect("websocket", inTunnel: false).Denial, "connect-not-allowed-here", 405);

    private sealed class ExtendedConnect(string protocol) : Microsoft.AspNetCore.Http.Features.IHttpExtendedConnectFeature
    {
        public bool IsExtendedConnect => true;

        public string? Protocol => protocol;

        public ValueTask<Stream> AcceptAsync() => throw new NotSupportedException();
    }

    [Fact]
    public void Audit_mode_does_not_soften_protocol_refusals()
    {
        var (denial, _) = Run(snapshot: TestSnapshots.AuditMode, headers: [("Content-Length", "5"), ("Transfer-Encoding", "chunked")]);
        AssertDenied(denial, "ambiguous-length", 400);
        Assert.Equal(ProxyGuard.Policy.Decisions.Verdict.Deny, denial!.Decision.Verdict);
    }

    [Fact]
    public void Http2_refusal_does_not_set_connection_close()
    {
        var (denial, context) = Run(protocol: "HTTP/2", headers: ("Content-Length", "05"));
        AssertDenied(denial, "ambiguous-length", 400);
        Assert.False(context.Response.Headers.ContainsKey("Connection"));
    }
}
