using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using ProxyGuard.FunctionalTests.Content;
using ProxyGuard.FunctionalTests.Secrets;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// A WebSocket origin on loopback (Kestrel, HTTP/1.1 and HTTP/2) with the modes the frame tests need:
/// <c>/echo</c> (every message back whole, and recorded), <c>/leak</c> (answers each message with the real secret
/// in the form the message names), <c>/deflate</c> (accepts permessage-deflate when offered) and <c>/force-extension</c>
/// (claims permessage-deflate although nobody offered it).
/// </summary>
public sealed class WebSocketFramesOrigin : IAsyncDisposable
{
    private const int MaxMessage = 4 * 1024 * 1024;

    private readonly WebApplication _app;

    private WebSocketFramesOrigin(WebApplication app) => _app = app;

    public int Port { get; private set; }

    /// <summary>The real value the origin "knows" and leaks.</summary>
    public string Known { get; set; } = string.Empty;

    /// <summary>Every message that reached the origin, as text (binary messages decoded as UTF-8).</summary>
    public ConcurrentQueue<string> Received { get; } = new();

    /// <summary>Path, protocol (HTTP/1.1 or HTTP/2) and Authorization of every WebSocket handshake that reached the origin.</summary>
    public ConcurrentQueue<(string Path, string Protocol, string Authorization)> Handshakes { get; } = new();

    /// <summary>Sec-WebSocket-Extensions of every upgrade request ("" when absent).</summary>
    public ConcurrentQueue<string> OfferedExtensions { get; } = new();

    public static async Task<WebSocketFramesOrigin> StartAsync(X509Certificate2 certificate, HttpProtocols protocols = HttpProtocols.Http1AndHttp2)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o =>
        {
            o.Protocols = protocols;
            o.UseHttps(certificate);
        }));
        var app = builder.Build();
        var self = new WebSocketFramesOrigin(app);
        app.UseWebSockets();
        app.Use(async (context, next) =>
        {
            if (context.WebSockets.IsWebSocketRequest)
            {
                self.OfferedExtensions.Enqueue(context.Request.Headers["Sec-WebSocket-Extensions"].ToString());
                self.Handshakes.Enqueue((context.Request.Path.Value ?? string.Empty, context.Request.Protocol, context.Request.Headers.Authorization.ToString()));
            }

            await next(context);
        });
        app.Map("/echo/{marker}", (HttpContext context) => self.ServeAsync(context, compression: false, (socket, type, message) =>
            socket.SendAsync(message, type, true, CancellationToken.None)));
        app.Map("/deflate/{marker}", (HttpContext context) => self.ServeAsync(context, compression: true, (socket, type, message) =>
            socket.SendAsync(message, type, true, CancellationToken.None)));
        app.Map("/leak/{marker}", (HttpContext context) => self.ServeAsync(context, compression: false, self.LeakAsync));
        app.Map("/force-extension/{marker}", async (HttpContext context) =>
        {
            context.Response.Headers["Sec-WebSocket-Extensions"] = "permessage-deflate";
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            await socket.SendAsync(Encoding.UTF8.GetBytes("compressed, supposedly"), WebSocketMessageType.Text, true, CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        });
        await app.StartAsync();
        self.Port = new Uri(app.Urls.First()).Port;
        return self;
    }

    private async Task ServeAsync(HttpContext context, bool compression, Func<WebSocket, WebSocketMessageType, byte[], Task> answer)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = 400;
            return;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { DangerousEnableCompression = compression });
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                    return;
                }

                message.Write(buffer, 0, result.Count);
                if (message.Length > MaxMessage)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.MessageTooBig, "origin limit", CancellationToken.None);
                    return;
                }

                if (!result.EndOfMessage)
                {
                    continue;
                }

                var bytes = message.ToArray();
                message.SetLength(0);
                Received.Enqueue(Encoding.UTF8.GetString(bytes));
                await answer(socket, result.MessageType, bytes);
            }
        }
        catch (WebSocketException)
        {
            // The proxy closed the connection (a refused message): nothing more to do.
        }
    }

    /// <summary>Answers "text", "fragmented", "binary", "json" or "close" with the real value in that shape.</summary>
    private async Task LeakAsync(WebSocket socket, WebSocketMessageType type, byte[] message)
    {
        var known = Encoding.UTF8.GetBytes(Known);
        switch (Encoding.UTF8.GetString(message))
        {
            case "fragmented":
                var third = known.Length / 3;
                await socket.SendAsync(Encoding.UTF8.GetBytes("token="), WebSocketMessageType.Text, false, CancellationToken.None);
                await socket.SendAsync(known.AsMemory(0, third), WebSocketMessageType.Text, false, CancellationToken.None);
                await socket.SendAsync(known.AsMemory(third, third), WebSocketMessageType.Text, false, CancellationToken.None);
                await socket.SendAsync(known.AsMemory(2 * third), WebSocketMessageType.Text, true, CancellationToken.None);
                break;
            case "binary":
                await socket.SendAsync((byte[])[0, 1, 2, .. known, 255], WebSocketMessageType.Binary, true, CancellationToken.None);
                break;
            case "json":
                await socket.SendAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { token = Known })), WebSocketMessageType.Text, true, CancellationToken.None);
                break;
            // Red team round 6: base64 of base64 (a stored manifest whose field is base64, served base64-encoded), and
            // base64 of UTF-16LE (a PowerShell -EncodedCommand setting the value).
            case "b64b64":
                await socket.SendAsync(Encoding.UTF8.GetBytes(Convert.ToBase64String(Encoding.UTF8.GetBytes(
                    "token: " + Convert.ToBase64String(known) + "\n"))), WebSocketMessageType.Text, true, CancellationToken.None);
                break;
            case "utf16":
                await socket.SendAsync(Encoding.UTF8.GetBytes(Convert.ToBase64String(Encoding.Unicode.GetBytes(
                    "$env:TOKEN='" + Known + "'"))), WebSocketMessageType.Text, true, CancellationToken.None);
                break;
            case "close":
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "token " + Known, CancellationToken.None);
                break;
            default:
                await socket.SendAsync(Encoding.UTF8.GetBytes("your token is " + Known + ", keep it safe"), WebSocketMessageType.Text, true, CancellationToken.None);
                break;
        }
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>
/// The secrets fixture with content scanning on (all built-in detectors, 1 MiB per body and per WebSocket message)
/// and a WebSocket origin whose rule allows upgrades.
/// </summary>
public sealed class WebSocketFramesFixture : SecretsFixture
{
    public const int MaxMessage = 1024 * 1024;

    public WebSocketFramesOrigin Ws { get; private set; } = null!;

    protected override string Content => """
        content:
          builtin: all
          max_body: 1MiB

        """;

    protected override string Rules => base.Rules.Replace("secrets:\n",
        $"  - name: ws\n    hosts: [localhost]\n    ports: [{Ws.Port}]\n    action: allow\n    websocket: true\nsecrets:\n", StringComparison.Ordinal);

    public override async Task InitializeAsync()
    {
        Ws = await WebSocketFramesOrigin.StartAsync(Pki.Issue(["localhost"]));
        Ws.Known = ApiValue;
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Ws.DisposeAsync();
    }
}

/// <summary>
/// Issue 15 (WebSocket frames): after the upgrade every message the sandbox sends is decided like a request body
/// (content scan, real values, placeholders) and every message the upstream sends is scrubbed; frames are re-framed
/// by the proxy, no compression extension gets through, and messages are bounded.
/// </summary>
[Collection("proxy")]
public sealed class WebSocketFramesTests : IClassFixture<WebSocketFramesFixture>
{
    private readonly WebSocketFramesFixture _f;

    public WebSocketFramesTests(WebSocketFramesFixture fixture)
    {
        _f = fixture;
    }

    private ClientWebSocket NewSocket()
    {
        var ws = new ClientWebSocket();
        ws.Options.Proxy = new WebProxy(_f.Proxy.ProxyUrl);
        ws.Options.CollectHttpResponseDetails = true;
        var ca = X509CertificateLoader.LoadCertificateFromFile(_f.Proxy.CaPath);
        ws.Options.RemoteCertificateValidationCallback = (_, cert, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return cert is not null && chain.Build(X509CertificateLoader.LoadCertificate(cert.GetRawCertData()));
        };
        return ws;
    }

    private async Task<ClientWebSocket> ConnectAsync(string path, Action<ClientWebSocket>? configure = null)
    {
        var ws = NewSocket();
        configure?.Invoke(ws);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(new Uri($"wss://localhost:{_f.Ws.Port}{path}"), timeout.Token);
        return ws;
    }

    private static async Task<(WebSocketReceiveResult Last, byte[] Message)> ReceiveMessageAsync(WebSocket ws)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer, timeout.Token);
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage || result.MessageType == WebSocketMessageType.Close)
            {
                return (result, message.ToArray());
            }
        }
    }

    private static async Task SendTextAsync(WebSocket ws, string text, WebSocketMessageType type = WebSocketMessageType.Text)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), type, true, timeout.Token);
    }

    private static async Task<string> EchoAsync(WebSocket ws, string text, WebSocketMessageType type = WebSocketMessageType.Text)
    {
        await SendTextAsync(ws, text, type);
        var (result, message) = await ReceiveMessageAsync(ws);
        Assert.Equal(type, result.MessageType);
        return Encoding.UTF8.GetString(message);
    }

    /// <summary>The proxy's close: the client is told the close code (and the reason's name), the origin never got the message.</summary>
    private async Task AssertClosedByProxyAsync(ClientWebSocket ws, WebSocketCloseStatus status, string reason, string marker, params string[] neverAtOrigin)
    {
        var (result, _) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(status, result.CloseStatus);
        Assert.Equal("proxyguard: " + reason, result.CloseStatusDescription);
        foreach (var text in neverAtOrigin)
        {
            Assert.DoesNotContain(_f.Ws.Received, m => m.Contains(text, StringComparison.Ordinal));
        }

        var e = await EventAsync(marker);
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal(reason, e.GetProperty("reason").GetString());
        Assert.Equal(101, e.GetProperty("status").GetInt32());
    }

    private Task<JsonElement> EventAsync(string marker) =>
        _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request"
            && ev.TryGetProperty("path", out var path) && path.GetString() is { } p && p.EndsWith("/" + marker, StringComparison.Ordinal), 10000);

    [Fact]
    public async Task An_aws_key_in_a_text_frame_closes_the_connection_with_1008_and_is_recorded()
    {
        using var ws = await ConnectAsync("/echo/aws-text");
        Assert.Equal("warming up", await EchoAsync(ws, "warming up"));
        var key = Synthetic.AwsKeyId();
        await SendTextAsync(ws, $"{{\"note\":\"here is the key {key}\"}}");
        await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.PolicyViolation, "content-finding", "aws-text", key);
        var e = await EventAsync("aws-text");
        Assert.Equal("aws-access-key-id", e.GetProperty("rule").GetString());
        Assert.Contains(e.GetProperty("findings").EnumerateArray(), f => f.GetProperty("location").GetString() == "websocket");
        Assert.DoesNotContain(key, e.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_aws_key_split_across_fragments_is_reassembled_and_refused()
    {
        using var ws = await ConnectAsync("/echo/aws-fragments");
        var key = Synthetic.AwsKeyId();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.SendAsync(Encoding.UTF8.GetBytes("key: " + key[..7]), WebSocketMessageType.Text, false, timeout.Token);
        await ws.SendAsync(Encoding.UTF8.GetBytes(key[7..13]), WebSocketMessageType.Text, false, timeout.Token);
        await ws.SendAsync(Encoding.UTF8.GetBytes(key[13..] + " end"), WebSocketMessageType.Text, true, timeout.Token);
        await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.PolicyViolation, "content-finding", "aws-fragments", key[..7], key[13..]);
    }

    [Fact]
    public async Task An_aws_key_in_a_binary_frame_is_refused()
    {
        using var ws = await ConnectAsync("/echo/aws-binary");
        var key = Synthetic.AwsKeyId();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.SendAsync((byte[])[0x00, 0xFF, .. Encoding.ASCII.GetBytes(key), 0x10], WebSocketMessageType.Binary, true, timeout.Token);
        await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.PolicyViolation, "content-finding", "aws-binary", key);
    }

    [Fact]
    public async Task A_key_in_a_ping_payload_or_close_reason_is_refused_too()
    {
        using var ws = await ConnectAsync("/echo/aws-close");
        var key = Synthetic.AwsKeyId();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye " + key, timeout.Token);
        await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.PolicyViolation, "content-finding", "aws-close");
    }

    [Fact]
    public async Task A_real_secret_value_or_a_placeholder_in_a_frame_is_refused()
    {
        using (var ws = await ConnectAsync("/echo/real-value"))
        {
            await SendTextAsync(ws, "the token: " + _f.ApiValue);
            var (result, _) = await ReceiveMessageAsync(ws);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, result.CloseStatus);
            Assert.DoesNotContain(_f.Ws.Received, m => m.Contains(_f.ApiValue, StringComparison.Ordinal));
            var e = await EventAsync("real-value");
            Assert.Equal("deny", e.GetProperty("decision").GetString());
            Assert.Contains(e.GetProperty("reason").GetString(), new[] { "content-finding", "secret-real-value" });
            Assert.DoesNotContain(_f.ApiValue, e.GetRawText(), StringComparison.Ordinal);
        }

        using (var ws = await ConnectAsync("/echo/placeholder"))
        {
            await SendTextAsync(ws, "{\"auth\":\"Bearer " + _f.ApiPlaceholder + "\"}");
            await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.PolicyViolation, "secret-misuse", "placeholder", _f.ApiPlaceholder, _f.ApiValue);
        }
    }

    [Theory]
    [InlineData("text")]
    [InlineData("fragmented")]
    [InlineData("binary")]
    [InlineData("json")]
    public async Task The_real_secret_sent_back_by_the_upstream_is_scrubbed(string mode)
    {
        using var ws = await ConnectAsync("/leak/leak-" + mode);
        await SendTextAsync(ws, mode);
        var (result, message) = await ReceiveMessageAsync(ws);
        Assert.True(result.EndOfMessage);
        var text = Encoding.UTF8.GetString(message);
        Assert.DoesNotContain(_f.ApiValue, text, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.ApiValue.Split('/')[0], text, StringComparison.Ordinal);
        Assert.Contains(_f.ApiPlaceholder, text, StringComparison.Ordinal);
        Assert.Equal(mode == "binary" ? WebSocketMessageType.Binary : WebSocketMessageType.Text, result.MessageType);
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
    }

    [Fact]
    public async Task The_real_secret_in_the_upstreams_close_reason_is_scrubbed()
    {
        using var ws = await ConnectAsync("/leak/leak-close");
        await SendTextAsync(ws, "close");
        var (result, _) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, result.CloseStatus);
        Assert.DoesNotContain(_f.ApiValue, result.CloseStatusDescription ?? string.Empty, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_compression_offer_is_not_passed_upstream_and_frames_stay_inspectable()
    {
        using var ws = await ConnectAsync("/deflate/deflate", w => w.Options.DangerousDeflateOptions = new WebSocketDeflateOptions());
        Assert.Equal("plain as day", await EchoAsync(ws, "plain as day"));
        Assert.All(_f.Ws.OfferedExtensions, offered => Assert.Equal(string.Empty, offered));
        Assert.False(ws.HttpResponseHeaders?.ContainsKey("Sec-WebSocket-Extensions") ?? false);
        var key = Synthetic.AwsKeyId();
        await SendTextAsync(ws, "compressed? " + key);
        await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.PolicyViolation, "content-finding", "deflate", key);
    }

    [Fact]
    public async Task An_upstream_that_negotiates_an_extension_nobody_offered_is_refused()
    {
        using var ws = NewSocket();
        await Assert.ThrowsAnyAsync<WebSocketException>(() =>
            ws.ConnectAsync(new Uri($"wss://localhost:{_f.Ws.Port}/force-extension/force"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.BadGateway, ws.HttpStatusCode);
        Assert.Equal("response-undecodable", ws.HttpResponseHeaders!["X-ProxyGuard-Reason"].Single());
    }

    [Fact]
    public async Task Pings_pongs_and_the_close_handshake_pass_both_ways()
    {
        using var ws = await ConnectAsync("/echo/ping", w =>
        {
            w.Options.KeepAliveInterval = TimeSpan.FromMilliseconds(100);
            w.Options.KeepAliveTimeout = TimeSpan.FromSeconds(1);
        });
        Assert.Equal("one", await EchoAsync(ws, "one"));

        // Pings every 100 ms whose pongs must come back within 1 s, or the client aborts the connection (pongs are
        // read while a receive is pending).
        var pending = ReceiveMessageAsync(ws);
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Equal(WebSocketState.Open, ws.State);
        await SendTextAsync(ws, "two");
        var (_, two) = await pending;
        Assert.Equal("two", Encoding.UTF8.GetString(two));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
        Assert.Equal("bye", ws.CloseStatusDescription);
        var e = await EventAsync("ping");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal(101, e.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task A_1_MiB_message_is_relayed_whole_and_a_larger_one_is_closed_with_1009()
    {
        var big = new string('x', WebSocketFramesFixture.MaxMessage - 16) + "0123456789abcdef";
        using (var ws = await ConnectAsync("/echo/big-ok"))
        {
            Assert.Equal(big, await EchoAsync(ws, big));
        }

        using (var ws = await ConnectAsync("/echo/too-big"))
        {
            // Sent in fragments: the proxy refuses as soon as the total passes the bound.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            var chunk = Encoding.ASCII.GetBytes(new string('y', 256 * 1024));
            for (var i = 0; i < 4; i++)
            {
                await ws.SendAsync(chunk, WebSocketMessageType.Text, false, timeout.Token);
            }

            await ws.SendAsync(Encoding.ASCII.GetBytes("!"), WebSocketMessageType.Text, true, timeout.Token);
            await AssertClosedByProxyAsync(ws, WebSocketCloseStatus.MessageTooBig, "over-limit", "too-big", "yyyy");
        }
    }

    [Fact]
    public async Task A_benign_chat_works_both_ways()
    {
        using var ws = await ConnectAsync("/echo/chat");
        for (var i = 0; i < 20; i++)
        {
            var line = $"message {i}: the build passed, {new string('é', i)} — next step?";
            Assert.Equal(line, await EchoAsync(ws, line));
        }

        Assert.Equal("binary hello", await EchoAsync(ws, "binary hello", WebSocketMessageType.Binary));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.SendAsync(Encoding.UTF8.GetBytes("split "), WebSocketMessageType.Text, false, timeout.Token);
        await ws.SendAsync(Encoding.UTF8.GetBytes("in two"), WebSocketMessageType.Text, true, timeout.Token);
        var (_, joined) = await ReceiveMessageAsync(ws);
        Assert.Equal("split in two", Encoding.UTF8.GetString(joined));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);

        var e = await EventAsync("chat");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal(101, e.GetProperty("status").GetInt32());
        Assert.True(e.GetProperty("requestBytes").GetInt64() > 0);
    }
}
