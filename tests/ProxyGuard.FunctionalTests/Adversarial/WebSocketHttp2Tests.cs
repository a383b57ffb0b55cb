using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.AntiBypass;
using ProxyGuard.FunctionalTests.Content;
using ProxyGuard.FunctionalTests.Secrets;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// The secrets fixture with content scanning on, a WebSocket origin (HTTP/1.1 and HTTP/2) whose rule allows upgrades
/// toward localhost and 127.0.0.1, a deny rule on <c>/denied/**</c>, a rule without <c>websocket: true</c> on
/// <c>/plain/**</c>, and a small process-wide WebSocket buffer budget (3 MiB, 1 MiB per message).
/// </summary>
public sealed class WebSocketHttp2Fixture : SecretsFixture
{
    public const int MaxMessage = 1024 * 1024;
    public const int BufferBudget = 3 * MaxMessage;

    public WebSocketFramesOrigin Ws { get; private set; } = null!;

    /// <summary>The same origin speaking HTTP/1.1 only: the proxy reaches it with an HTTP/1.1 Upgrade.</summary>
    public WebSocketFramesOrigin Ws1 { get; private set; } = null!;

    protected override string Content => """
        content:
          builtin: all
          max_body: 1MiB

        """;

    protected override string Rules => base.Rules.Replace("secrets:\n", string.Join('\n',
        "  - name: ws-denied",
        "    hosts: [localhost]",
        $"    ports: [{Ws.Port}]",
        "    paths: [/denied/**]",
        "    action: deny",
        "  - name: ws-plain",
        "    hosts: [localhost]",
        $"    ports: [{Ws.Port}]",
        "    paths: [/plain/**]",
        "    action: allow",
        "  - name: ws",
        "    hosts: [localhost, 127.0.0.1]",
        $"    ports: [{Ws.Port}, {Ws1.Port}]",
        "    methods: [GET]",
        "    action: allow",
        "    websocket: true",
        "secrets:\n"), StringComparison.Ordinal);

    protected override IDictionary<string, string>? ProxyEnvironment => new Dictionary<string, string>(base.ProxyEnvironment!)
    {
        ["PROXYGUARD_LIMIT_MAX_WEBSOCKET_BUFFERED_BYTES"] = BufferBudget.ToString(CultureInfo.InvariantCulture),
    };

    public override async Task InitializeAsync()
    {
        Ws = await WebSocketFramesOrigin.StartAsync(Pki.Issue(["localhost", "127.0.0.1"]));
        Ws.Known = ApiValue;
        Ws1 = await WebSocketFramesOrigin.StartAsync(Pki.Issue(["localhost"]), Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1);
        Ws1.Known = ApiValue;
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Ws.DisposeAsync();
        await Ws1.DisposeAsync();
    }
}

/// <summary>
/// Issue 15, class 7 (follow-up): WebSockets over HTTP/2 (RFC 8441 extended CONNECT, <c>:protocol websocket</c>) from
/// the sandbox are relayed with the guarantees of the HTTP/1.1 upgrade: the handshake is decided (rules, paths,
/// <c>websocket: true</c>), scanned and substituted like any request and recorded (status 200, the extended CONNECT's
/// success); every frame goes through the same inspection, scrubbing and budgets. Before this, the proxy refused
/// every such handshake (<c>405 connect-not-allowed-here</c>).
/// </summary>
[Collection("proxy")]
public sealed partial class WebSocketHttp2Tests : IClassFixture<WebSocketHttp2Fixture>
{
    private readonly WebSocketHttp2Fixture _f;

    public WebSocketHttp2Tests(WebSocketHttp2Fixture fixture)
    {
        _f = fixture;
    }

    /// <summary>An HTTP/2-only client like a browser's: the proxy's CA as the only root; one connection unless asked.</summary>
    private HttpMessageInvoker Invoker(bool multipleConnections = false)
    {
        var handler = Infrastructure.ProxyClients.Handler(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        handler.EnableMultipleHttp2Connections = multipleConnections;
        return new HttpMessageInvoker(handler);
    }

    private static ClientWebSocket NewSocket(Action<ClientWebSocket>? configure = null)
    {
        var ws = new ClientWebSocket();
        ws.Options.HttpVersion = HttpVersion.Version20;
        ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        ws.Options.CollectHttpResponseDetails = true;
        configure?.Invoke(ws);
        return ws;
    }

    private async Task<ClientWebSocket> ConnectAsync(HttpMessageInvoker invoker, string path, int? port = null, Action<ClientWebSocket>? configure = null)
    {
        var ws = NewSocket(configure);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await ws.ConnectAsync(new Uri($"wss://localhost:{port ?? _f.Ws.Port}{path}"), invoker, timeout.Token);
        }
        catch (WebSocketException e)
        {
            var reason = ws.HttpResponseHeaders?.TryGetValue("X-ProxyGuard-Reason", out var r) == true ? string.Join(",", r) : "(none)";
            ws.Dispose();
            throw new InvalidOperationException($"the HTTP/2 WebSocket handshake failed: status {(int)ws.HttpStatusCode}, reason {reason}: {e.Message}", e);
        }

        // RFC 8441: the extended CONNECT succeeds with 200 (there is no 101 in HTTP/2).
        Assert.Equal(HttpStatusCode.OK, ws.HttpStatusCode);
        return ws;
    }

    private static async Task<(WebSocketReceiveResult Last, byte[] Message)> ReceiveMessageAsync(WebSocket ws, TimeSpan? wait = null)
    {
        using var timeout = new CancellationTokenSource(wait ?? TimeSpan.FromSeconds(20));
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

    private Task<JsonElement> EventAsync(string marker) =>
        _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request"
            && ev.TryGetProperty("path", out var path) && path.GetString() is { } p && p.EndsWith("/" + marker, StringComparison.Ordinal), 10000);

    [Fact]
    public async Task Data_flows_both_ways_over_an_http2_websocket_and_the_handshake_is_recorded()
    {
        using var invoker = Invoker();
        using var ws = await ConnectAsync(invoker, "/echo/h2-chat");
        for (var i = 0; i < 10; i++)
        {
            var line = $"h2 message {i}: {new string('é', i)} — still there?";
            Assert.Equal(line, await EchoAsync(ws, line));
        }

        Assert.Equal("binary over h2", await EchoAsync(ws, "binary over h2", WebSocketMessageType.Binary));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.SendAsync(Encoding.UTF8.GetBytes("split "), WebSocketMessageType.Text, false, timeout.Token);
        await ws.SendAsync(Encoding.UTF8.GetBytes("in two"), WebSocketMessageType.Text, true, timeout.Token);
        var (_, joined) = await ReceiveMessageAsync(ws);
        Assert.Equal("split in two", Encoding.UTF8.GetString(joined));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);

        var e = await EventAsync("h2-chat");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal("ws", e.GetProperty("rule").GetString());
        Assert.Equal("GET", e.GetProperty("method").GetString());
        Assert.Equal(200, e.GetProperty("status").GetInt32());
        Assert.True(e.GetProperty("requestBytes").GetInt64() > 0);
        Assert.True(e.GetProperty("responseBytes").GetInt64() > 0);
        // This origin speaks HTTP/2 and advertises extended CONNECT: the proxy's leg is HTTP/2 too.
        Assert.Contains(_f.Ws.Handshakes, h => h.Path == "/echo/h2-chat" && h.Protocol == "HTTP/2");
        Assert.DoesNotContain("Unhandled", _f.Proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_idle_http2_websocket_stays_open()
    {
        // Kestrel's minimum request body data rate (240 B/s after a 5 s grace) must not apply to an accepted stream:
        // a chat that is quiet for a while is not a slow upload.
        using var invoker = Invoker();
        using var ws = await ConnectAsync(invoker, "/echo/h2-idle");
        Assert.Equal("before", await EchoAsync(ws, "before"));
        await Task.Delay(TimeSpan.FromSeconds(9));
        Assert.Equal(WebSocketState.Open, ws.State);
        Assert.Equal("after a quiet while", await EchoAsync(ws, "after a quiet while"));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        var e = await EventAsync("h2-idle");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
    }

    [Fact]
    public async Task An_http1_only_origin_is_reached_with_an_upgrade_and_frames_are_inspected_the_same()
    {
        using var invoker = Invoker();
        using (var ws = await ConnectAsync(invoker, "/echo/h2-to-h1", _f.Ws1.Port))
        {
            Assert.Equal("across versions", await EchoAsync(ws, "across versions"));
            var key = Synthetic.AwsKeyId();
            await SendTextAsync(ws, "key " + key);
            var (result, _) = await ReceiveMessageAsync(ws);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, result.CloseStatus);
            Assert.DoesNotContain(_f.Ws1.Received, m => m.Contains(key, StringComparison.Ordinal));
        }

        Assert.Contains(_f.Ws1.Handshakes, h => h.Path == "/echo/h2-to-h1" && h.Protocol == "HTTP/1.1");
        using (var ws = await ConnectAsync(invoker, "/leak/h2-to-h1-leak", _f.Ws1.Port))
        {
            await SendTextAsync(ws, "json");
            var (_, message) = await ReceiveMessageAsync(ws);
            var text = Encoding.UTF8.GetString(message);
            Assert.DoesNotContain(_f.ApiValue.Split('/')[0], text, StringComparison.Ordinal);
            Assert.Contains(_f.ApiPlaceholder, text, StringComparison.Ordinal);
        }

        var e = await EventAsync("h2-to-h1");
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal("content-finding", e.GetProperty("reason").GetString());
        Assert.Equal(200, e.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task A_placeholder_in_a_handshake_header_is_substituted_toward_the_bound_host_and_refused_toward_others()
    {
        using var invoker = Invoker();
        using (var ws = await ConnectAsync(invoker, "/echo/h2-auth", configure: w => w.Options.SetRequestHeader("Authorization", "Bearer " + _f.ApiPlaceholder)))
        {
            Assert.Equal("authorised", await EchoAsync(ws, "authorised"));
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        }

        Assert.Contains(_f.Ws.Handshakes, h => h.Path == "/echo/h2-auth" && h.Authorization == "Bearer " + _f.ApiValue);
        var e = await EventAsync("h2-auth");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal(new[] { "api" }, e.GetProperty("secretsInjected").EnumerateArray().Select(x => x.GetString() ?? string.Empty).ToArray());
        Assert.DoesNotContain(_f.ApiValue, e.GetRawText(), StringComparison.Ordinal);

        // The secret is bound to localhost: toward 127.0.0.1 (same origin, allowed by the rule) it is refused.
        using var other = NewSocket(w => w.Options.SetRequestHeader("Authorization", "Bearer " + _f.ApiPlaceholder));
        await Assert.ThrowsAnyAsync<WebSocketException>(() =>
            other.ConnectAsync(new Uri($"wss://127.0.0.1:{_f.Ws.Port}/echo/h2-unbound"), invoker, CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, other.HttpStatusCode);
        Assert.Equal("secret-misuse", other.HttpResponseHeaders!["X-ProxyGuard-Reason"].Single());
        Assert.DoesNotContain(_f.Ws.Handshakes, h => h.Path == "/echo/h2-unbound");
    }

    [Theory]
    [InlineData("text")]
    [InlineData("fragmented")]
    [InlineData("json")]
    public async Task A_real_secret_sent_back_by_the_origin_is_scrubbed_as_on_http1(string mode)
    {
        using var invoker = Invoker();
        using var ws = await ConnectAsync(invoker, "/leak/h2-leak-" + mode);
        await SendTextAsync(ws, mode);
        var (result, message) = await ReceiveMessageAsync(ws);
        Assert.True(result.EndOfMessage);
        var text = Encoding.UTF8.GetString(message);
        Assert.DoesNotContain(_f.ApiValue, text, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.ApiValue.Split('/')[0], text, StringComparison.Ordinal);
        Assert.Contains(_f.ApiPlaceholder, text, StringComparison.Ordinal);
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
    }

    [Fact]
    public async Task A_key_or_a_real_value_sent_by_the_sandbox_closes_the_stream_with_1008_and_is_recorded()
    {
        using var invoker = Invoker();
        var key = Synthetic.AwsKeyId();
        using (var ws = await ConnectAsync(invoker, "/echo/h2-aws"))
        {
            Assert.Equal("warming up", await EchoAsync(ws, "warming up"));
            await SendTextAsync(ws, $"{{\"note\":\"here is the key {key}\"}}");
            var (result, _) = await ReceiveMessageAsync(ws);
            Assert.Equal(WebSocketMessageType.Close, result.MessageType);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, result.CloseStatus);
            Assert.Equal("proxyguard: content-finding", result.CloseStatusDescription);
        }

        Assert.DoesNotContain(_f.Ws.Received, m => m.Contains(key, StringComparison.Ordinal));
        var e = await EventAsync("h2-aws");
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal("content-finding", e.GetProperty("reason").GetString());
        Assert.Equal("aws-access-key-id", e.GetProperty("rule").GetString());
        Assert.Equal(200, e.GetProperty("status").GetInt32());
        Assert.Contains(e.GetProperty("findings").EnumerateArray(), f => f.GetProperty("location").GetString() == "websocket");
        Assert.DoesNotContain(key, e.GetRawText(), StringComparison.Ordinal);

        using (var ws = await ConnectAsync(invoker, "/echo/h2-real"))
        {
            await SendTextAsync(ws, "the token: " + _f.ApiValue);
            var (result, _) = await ReceiveMessageAsync(ws);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, result.CloseStatus);
        }

        Assert.DoesNotContain(_f.Ws.Received, m => m.Contains(_f.ApiValue, StringComparison.Ordinal));
        var real = await EventAsync("h2-real");
        Assert.Equal("deny", real.GetProperty("decision").GetString());
        Assert.DoesNotContain(_f.ApiValue, real.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_denied_path_and_a_rule_without_websocket_get_403_with_a_reason_and_an_event()
    {
        using var invoker = Invoker();
        foreach (var (path, reason) in new[] { ("/denied/h2-denied", "rule-deny"), ("/plain/h2-plain", "websocket-not-allowed") })
        {
            using var ws = NewSocket();
            await Assert.ThrowsAnyAsync<WebSocketException>(() =>
                ws.ConnectAsync(new Uri($"wss://localhost:{_f.Ws.Port}{path}"), invoker, CancellationToken.None));
            Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);
            Assert.Equal(reason, ws.HttpResponseHeaders!["X-ProxyGuard-Reason"].Single());
            Assert.DoesNotContain(_f.Ws.Handshakes, h => h.Path == path);
            var e = await EventAsync(path.Split('/')[^1]);
            Assert.Equal("deny", e.GetProperty("decision").GetString());
            Assert.Equal(reason, e.GetProperty("reason").GetString());
            Assert.Equal(403, e.GetProperty("status").GetInt32());
        }
    }

    [Fact]
    public async Task An_extended_connect_for_another_protocol_is_refused_and_recorded()
    {
        var authority = $"localhost:{_f.Ws.Port.ToString(CultureInfo.InvariantCulture)}";
        await using var connection = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, authority, "localhost", "h2");
        var h2 = new RawH2(connection.Stream);
        await h2.StartAsync();
        await Task.Delay(200); // the server's SETTINGS (with SETTINGS_ENABLE_CONNECT_PROTOCOL) arrive first
        await h2.SendHeadersAsync(1, endStream: false,
            [H.Literal(":method", "CONNECT"), H.Literal(":protocol", "connect-udp"), H.StaticIndex(7), H.Literal(":path", "/echo/h2-udp"), H.Literal(":authority", authority)]);
        var statuses = await h2.ReadStatusesAsync([1], TimeSpan.FromSeconds(10));
        Assert.True(statuses.TryGetValue(1, out var status) && status != 200, $"stream 1: {status}");
        Assert.DoesNotContain(_f.Ws.Handshakes, h => h.Path == "/echo/h2-udp");
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request"
            && ev.TryGetProperty("reason", out var r) && r.GetString() == "connect-not-allowed-here"
            && ev.TryGetProperty("port", out var port) && port.GetInt32() == _f.Ws.Port, 10000);
        Assert.Equal("deny", e.GetProperty("decision").GetString());
    }

    /// <summary>
    /// A hostile client: one HTTP/2 connection, many WebSocket streams, each holding a large unfinished message, and one
    /// frame larger than the message bound. The message buffers of the whole process stay within the budget (3 MiB):
    /// four 700 KiB messages fit, the streams past the budget are closed with 1013 <c>websocket-buffer-full</c>, the
    /// oversized frame with 1009 <c>over-limit</c> before its payload is buffered, and every byte of the budget is back
    /// once the client is gone.
    /// </summary>
    [Fact]
    public async Task Many_streams_with_huge_messages_stay_within_the_websocket_budgets()
    {
        const int Streams = 8;
        const int Fragment = 700 * 1024;
        using var invoker = Invoker();
        var sockets = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < Streams; i++)
            {
                sockets.Add(await ConnectAsync(invoker, $"/echo/h2-flood-{i}"));
            }

            // Each stream sends most of a message and never finishes it: the proxy must hold it to inspect it whole.
            var fragment = Encoding.ASCII.GetBytes(new string('f', Fragment));
            var receives = new List<Task<(WebSocketReceiveResult Last, byte[] Message)>>();
            var peak = 0L;
            foreach (var ws in sockets)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                await ws.SendAsync(fragment, WebSocketMessageType.Text, false, timeout.Token);
                receives.Add(ReceiveMessageAsync(ws, TimeSpan.FromSeconds(30)));
                peak = Math.Max(peak, await InUseAsync());
            }

            var expectedRefused = Streams - (WebSocketHttp2Fixture.BufferBudget / Fragment);
            var sw = Stopwatch.StartNew();
            while (receives.Count(t => t.IsCompleted) < expectedRefused && sw.Elapsed < TimeSpan.FromSeconds(20))
            {
                peak = Math.Max(peak, await InUseAsync());
                await Task.Delay(100);
            }

            await Task.Delay(500);
            peak = Math.Max(peak, await InUseAsync());
            var closed = receives.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result.Last).ToList();
            Assert.Equal(expectedRefused, closed.Count(r => r.CloseStatus == (WebSocketCloseStatus)1013 && r.CloseStatusDescription == "proxyguard: websocket-buffer-full"));
            Assert.Equal(expectedRefused, receives.Count(t => t.IsCompleted));
            Assert.True(peak <= WebSocketHttp2Fixture.BufferBudget, $"peak {peak} bytes held for WebSocket messages");
            var held = (long)(Streams - expectedRefused) * Fragment;
            var settle = Stopwatch.StartNew();
            while (await InUseAsync() != held && settle.Elapsed < TimeSpan.FromSeconds(5))
            {
                await Task.Delay(100); // the refused streams give their bytes back as their relays end
            }

            Assert.Equal(held, await InUseAsync());

            // A frame that declares more than a message may hold is refused from its header (1009), nothing reserved.
            using (var big = await ConnectAsync(invoker, "/echo/h2-huge"))
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                var pending = ReceiveMessageAsync(big);
                try
                {
                    await big.SendAsync(new byte[2 * WebSocketHttp2Fixture.MaxMessage], WebSocketMessageType.Binary, true, timeout.Token);
                }
                catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
                {
                    // The proxy stopped reading the stream after the frame's header: the rest of it is never sent.
                }

                var (result, _) = await pending;
                Assert.Equal(WebSocketCloseStatus.MessageTooBig, result.CloseStatus);
                Assert.Equal("proxyguard: over-limit", result.CloseStatusDescription);
            }

            var e = await _f.Proxy.WaitForEventAsync(ev => ev.TryGetProperty("reason", out var r) && r.GetString() == "websocket-buffer-full", 10000);
            Assert.Equal(200, e.GetProperty("status").GetInt32());

            // The connection still serves a normal WebSocket while the attack holds its share.
            using (var normal = await ConnectAsync(invoker, "/echo/h2-normal"))
            {
                Assert.Equal("still served", await EchoAsync(normal, "still served"));
            }
        }
        finally
        {
            foreach (var ws in sockets)
            {
                ws.Abort();
                ws.Dispose();
            }
        }

        var released = Stopwatch.StartNew();
        var inUse = await InUseAsync();
        while (inUse != 0 && released.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(200);
            inUse = await InUseAsync();
        }

        Assert.Equal(0, inUse);
    }

    private async Task<long> InUseAsync()
    {
        using var admin = _f.Proxy.AdminClient();
        var match = InUseLine().Match(await admin.GetStringAsync("metrics"));
        return match.Success ? (long)double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    [GeneratedRegex("""^proxyguard_budget_in_use\{budget="websocket-buffers"\} (\S+)$""", RegexOptions.Multiline)]
    private static partial Regex InUseLine();
}
