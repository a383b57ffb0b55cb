using Microsoft.AspNetCore.Http;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;

namespace ProxyGuard.Engine.Tests.Pipeline.Stages;

public sealed class TargetStageTests
{
    private static (Denial? Denial, ProxyExchange Exchange, HttpContext Context) Run(
        string rawTarget, TunnelTarget? tunnel, string? sni = null, string method = "GET", params (string, string)[] headers)
    {
        var context = Context(method, rawTarget, tunnel, sni, headers: headers);
        var exchange = Exchange(TestSnapshots.Enforce, context);
        var denial = new TargetStage(Services()).RunAsync(exchange).AsTask().GetAwaiter().GetResult();
        return (denial, exchange, context);
    }

    [Fact]
    public void Origin_form_in_a_tunnel_builds_the_view_from_the_tunnel_target()
    {
        var (denial, exchange, _) = Run("/v1/items?x=1&y", Tunnel(), "api.example.com", "POST",
            ("Host", "api.example.com"), ("X-A", "1"), ("X-A", "2"));
        Assert.Null(denial);
        var view = exchange.View;
        Assert.Equal(new RequestTarget("https", "api.example.com", 443, "/v1/items", "x=1&y"), view.Target);
        Assert.Equal("POST", view.Method);
        Assert.Equal(new[] { "1", "2" }, view.Headers.Where(h => h.Key == "X-A").Select(h => h.Value));
        Assert.False(view.Upgrade);
        Assert.Equal("x=1&y", exchange.Outgoing.RawQuery);
    }

    [Theory]
    [InlineData("websocket", "GET")]
    [InlineData("connect-udp", "CONNECT")]
    public async Task An_http2_websocket_extended_connect_is_viewed_as_the_get_handshake(string protocol, string viewed)
    {
        var context = Context("CONNECT", "/chat?room=1", Tunnel(), "api.example.com", protocol: "HTTP/2", headers: ("sec-websocket-version", "13"));
        context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpExtendedConnectFeature>(new ExtendedConnect(protocol));
        var exchange = Exchange(TestSnapshots.Enforce, context);
        Assert.Null(await new TargetStage(Services()).RunAsync(exchange));
        Assert.Equal(viewed, exchange.View.Method);
        Assert.True(exchange.View.Upgrade);
        Assert.Equal(new RequestTarget("https", "api.example.com", 443, "/chat", "room=1"), exchange.View.Target);
    }

    private sealed class ExtendedConnect(string protocol) : Microsoft.AspNetCore.Http.Features.IHttpExtendedConnectFeature
    {
        public bool IsExtendedConnect => true;

        public string? Protocol => protocol;

        public ValueTask<Stream> AcceptAsync() => throw new NotSupportedException();
    }

    [Theory]
    [InlineData("api.example.com:443")]
    [InlineData("API.Example.COM")]
    [InlineData("api.example.com.")]
    public void Host_header_naming_the_tunnel_target_passes(string host) =>
        Assert.Null(Run("/", Tunnel(), headers: ("Host", host)).Denial);

    [Theory]
    [InlineData("evil.example")]
    [InlineData("api.example.com:8443")]
    [InlineData("api.example.com.evil.example")]
    [InlineData("api.example.com:0")]
    [InlineData("[::1]:443")]
    public void Host_header_mismatch_is_domain_fronting(string host)
    {
        var (denial, exchange, context) = Run("/x", Tunnel(), headers: ("Host", host));
        Assert.NotNull(denial);
        Assert.Equal("host-mismatch", denial.Reason);
        Assert.Equal(403, denial.Status);
        Assert.Equal("tunnel", denial.Rule);
        // The tunnel target is recorded on the refusal too, and the connection is not a protocol error.
        Assert.Equal("api.example.com", exchange.View.Target.Host);
        Assert.False(context.Response.Headers.ContainsKey("Connection"));
    }

    [Theory]
    [InlineData("https://evil.example/x")]
    [InlineData("http://api.example.com/x")]
    [InlineData("https://api.example.com:8443/x")]
    public void Absolute_form_naming_another_target_in_a_tunnel_is_refused(string rawTarget)
    {
        var (denial, exchange, _) = Run(rawTarget, Tunnel(), headers: ("Host", "api.example.com"));
        Assert.Equal("host-mismatch", denial?.Reason);
        Assert.Equal("/x", exchange.View.Target.RawPath);
        Assert.Equal("https", exchange.View.Target.Scheme);
    }

    [Fact]
    public void Absolute_form_naming_the_tunnel_target_passes()
    {
        var (denial, exchange, _) = Run("https://api.example.com/x?q", Tunnel(), "api.example.com");
        Assert.Null(denial);
        Assert.Equal("/x", exchange.View.Target.RawPath);
        Assert.Equal("q", exchange.View.Target.RawQuery);
    }

    [Theory]
    [InlineData("evil.example")]
    [InlineData("api.example.com.evil.example")]
    [InlineData("bad host")]
    public void Sni_mismatch_is_refused(string sni)
    {
        var (denial, _, _) = Run("/", Tunnel(), sni, headers: ("Host", "api.example.com"));
        Assert.Equal("sni-mismatch", denial?.Reason);
        Assert.Equal(403, denial!.Status);
    }

    [Fact]
    public void Sni_of_the_tunnel_target_in_other_case_passes() => Assert.Null(Run("/", Tunnel(), "API.EXAMPLE.COM").Denial);

    [Theory]
    [InlineData("*")]
    [InlineData("api.example.com:443")]
    [InlineData("x")]
    public void Non_path_target_in_a_tunnel_is_a_bad_target(string rawTarget)
    {
        var (denial, exchange, context) = Run(rawTarget, Tunnel());
        Assert.Equal("bad-target", denial?.Reason);
        Assert.Equal(400, denial!.Status);
        Assert.Equal("/", exchange.View.Target.RawPath); // a view exists for the event
        Assert.Equal("close", context.Response.Headers.Connection.ToString());
    }

    [Fact]
    public void Plain_absolute_http_request_passes_and_keeps_the_port()
    {
        var (denial, exchange, _) = Run("http://Plain.Example.NET:8080/a/b?c=d", null, headers: ("Host", "plain.example.net:8080"));
        Assert.Null(denial);
        Assert.Equal(new RequestTarget("http", "plain.example.net", 8080, "/a/b", "c=d"), exchange.View.Target);
        Assert.Null(exchange.View.ClientId);
    }

    [Fact]
    public void Plain_request_without_a_port_gets_80() =>
        Assert.Equal(80, Run("http://plain.example.net/", null).Exchange.View.Target.Port);

    [Fact]
    public void Plain_origin_form_is_not_a_proxy_request()
    {
        var (denial, exchange, context) = Run("/x", null, headers: ("Host", "plain.example.net"));
        Assert.Equal("not-a-proxy-request", denial?.Reason);
        Assert.Equal(400, denial!.Status);
        Assert.False(exchange.HasView);
        Assert.Equal("close", context.Response.Headers.Connection.ToString());
    }

    [Fact]
    public void Plain_https_absolute_form_must_use_connect() =>
        Assert.Equal("use-connect", Run("https://api.example.com/", null).Denial?.Reason);

    [Theory]
    [InlineData("http://plain.example.net:0/")]
    [InlineData("http://plain.example.net:65536/")]
    [InlineData("http://[::1/")]
    [InlineData("http://a:b:c/")]
    [InlineData("http://:80/")]
    [InlineData("http://[fe80::1%25eth0]/")] // zone id
    public void Plain_bad_host_is_refused(string rawTarget)
    {
        var (denial, _, context) = Run(rawTarget, null);
        Assert.Equal("bad-host", denial?.Reason);
        Assert.Equal(400, denial!.Status);
        Assert.Equal("close", context.Response.Headers.Connection.ToString());
    }

    [Theory]
    [InlineData("other.example")]
    [InlineData("plain.example.net:81")]
    public void Plain_host_header_mismatch_is_refused(string host)
    {
        var (denial, exchange, _) = Run("http://plain.example.net/", null, headers: ("Host", host));
        Assert.Equal("host-mismatch", denial?.Reason);
        Assert.Equal("plain.example.net", exchange.View.Target.Host);
    }

    [Fact]
    public void Upgrade_header_marks_the_view() =>
        Assert.True(Run("/", Tunnel(), headers: [("Upgrade", "websocket"), ("Connection", "Upgrade")]).Exchange.View.Upgrade);

    [Fact]
    public void Client_of_the_tunnel_is_carried_into_the_view() =>
        Assert.Equal("agent-1", Run("/", Tunnel(clientId: "agent-1")).Exchange.View.ClientId);
}
