using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Globalization;
using ProxyGuard.FunctionalTests.AntiBypass;
using ProxyGuard.FunctionalTests.Content;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 6 against the response scrubber: a bound API that holds the value returns it base64 inside base64
/// (a Kubernetes Secret manifest served by a contents API). Real binary, real TLS, a hostile HTTP/1.1 origin.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound6ResponseTests : IClassFixture<HostileOriginFixture>
{
    private readonly HostileOriginFixture _f;

    public RedTeamRound6ResponseTests(HostileOriginFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>
    /// FINDING R6-1 (medium, the real value reaches the sandbox): base64 of base64. A repository file that is a
    /// Kubernetes Secret manifest holds the value base64-encoded (<c>data.token</c>); GitHub's contents API returns the
    /// file base64-encoded again (wrapped at 60 columns with the JSON escape <c>\n</c>). The matcher decodes one
    /// base64 run and matches the text views in it, but does not decode base64 found inside decoded base64, so the
    /// response passes unscrubbed and two <c>base64 -d</c> give the sandbox the value.
    /// </summary>
    [Fact]
    public async Task A_bound_api_returning_base64_of_base64_of_the_value_is_scrubbed()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/k8s-in-github");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var manifest = TryBase64(JsonDocument.Parse(body).RootElement.GetProperty("content").GetString()!.Replace("\n", string.Empty, StringComparison.Ordinal));
        var line = manifest.Split('\n').FirstOrDefault(l => l.TrimStart().StartsWith("token:", StringComparison.Ordinal)) ?? string.Empty;
        var value = TryBase64(line.Split(':', 2)[^1].Trim());
        Assert.False(value.Contains(_f.Value, StringComparison.Ordinal), $"the real value reached the sandbox, base64 twice ({(int)response.StatusCode})");
    }

    internal static string TryBase64(string text)
    {
        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(text));
        }
        catch (FormatException)
        {
            return text; // scrubbed: the placeholder took the place of the value's form
        }
    }
}

/// <summary>
/// Red team round 6 against WebSockets over HTTP/2 (RFC 8441): an HTTP/2-only client through the proxy's tunnel, the
/// WebSocket origin of the HTTP/2 WebSocket tests holding the API secret's real value.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound6WebSocketTests : IClassFixture<WebSocketHttp2Fixture>
{
    private readonly WebSocketHttp2Fixture _f;

    public RedTeamRound6WebSocketTests(WebSocketHttp2Fixture fixture)
    {
        _f = fixture;
    }

    private HttpMessageInvoker Invoker()
    {
        var handler = ProxyClients.Handler(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        return new HttpMessageInvoker(handler);
    }

    private async Task<string> LeakAsync(string mode)
    {
        using var invoker = Invoker();
        using var ws = new ClientWebSocket();
        ws.Options.HttpVersion = HttpVersion.Version20;
        ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(new Uri($"wss://localhost:{_f.Ws.Port}/leak/r6-{mode}"), invoker, timeout.Token);
        await ws.SendAsync(Encoding.UTF8.GetBytes(mode), WebSocketMessageType.Text, true, timeout.Token);
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer, timeout.Token);
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage || result.MessageType == WebSocketMessageType.Close)
            {
                break;
            }
        }

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        return Encoding.UTF8.GetString(message.ToArray());
    }

    /// <summary>
    /// FINDING R6-1 over an HTTP/2 WebSocket (medium, the real value reaches the sandbox): the origin sends a message
    /// that is base64 of a document holding the value base64-encoded. The frame scrubber uses the shared matcher, which
    /// does not decode base64 inside decoded base64: the message arrives unchanged and decodes to the value.
    /// </summary>
    [Fact]
    public async Task A_real_value_echoed_as_base64_of_base64_in_a_frame_is_scrubbed()
    {
        var text = await LeakAsync("b64b64");
        var inner = RedTeamRound6ResponseTests.TryBase64(text);
        var value = RedTeamRound6ResponseTests.TryBase64(inner.Split(':', 2)[^1].Trim());
        Assert.False(value.Contains(_f.ApiValue, StringComparison.Ordinal), "the real value reached the sandbox, base64 twice in a WebSocket message");
    }

    /// <summary>
    /// FINDING R6-2 (low/medium, the real value reaches the sandbox): base64 of UTF-16LE, the form of PowerShell's
    /// <c>-EncodedCommand</c> and of Windows APIs. The matcher knows only UTF-8 forms of a value.
    /// </summary>
    [Fact]
    public async Task A_real_value_echoed_as_base64_of_utf16_in_a_frame_is_scrubbed()
    {
        var text = await LeakAsync("utf16");
        string decoded;
        try
        {
            decoded = Encoding.Unicode.GetString(Convert.FromBase64String(text));
        }
        catch (FormatException)
        {
            decoded = text;
        }

        Assert.False(decoded.Contains(_f.ApiValue, StringComparison.Ordinal), "the real value reached the sandbox as base64 of UTF-16LE");
    }

    /// <summary>One masked client frame (FIN set) carrying <paramref name="payload"/>.</summary>
    private static byte[] MaskedFrame(int opcode, byte[] payload)
    {
        var mask = new byte[] { 0x11, 0x22, 0x33, 0x44 };
        var head = payload.Length < 126
            ? new byte[] { (byte)(0x80 | opcode), (byte)(0x80 | payload.Length) }
            : [(byte)(0x80 | opcode), 0x80 | 126, (byte)(payload.Length >> 8), (byte)payload.Length];
        return [.. head, .. mask, .. payload.Select((b, i) => (byte)(b ^ mask[i % 4]))];
    }

    /// <summary>
    /// Probe (held): a raw HTTP/2 client sends its WebSocket frames in DATA right behind the extended CONNECT's HEADERS,
    /// before the proxy answered 200 (toward an HTTP/2 origin and toward an HTTP/1.1 origin reached with an Upgrade):
    /// an AWS key in a text frame and the real value in a ping. Neither may reach the origin: the early frames are
    /// read through the same frame inspection as the later ones.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Frames_sent_before_the_200_are_inspected_like_the_others(bool http1Origin)
    {
        var port = (http1Origin ? _f.Ws1 : _f.Ws).Port.ToString(CultureInfo.InvariantCulture);
        var authority = $"localhost:{port}";
        var key = Synthetic.AwsKeyId();
        var marker = "r6-early-" + (http1Origin ? "h1" : "h2");
        await using var connection = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, authority, "localhost", "h2");
        var h2 = new RawH2(connection.Stream);
        await h2.StartAsync();
        await Task.Delay(200); // the server's SETTINGS (with SETTINGS_ENABLE_CONNECT_PROTOCOL) arrive first
        await h2.SendHeadersAsync(1, endStream: false,
            [H.Literal(":method", "CONNECT"), H.Literal(":protocol", "websocket"), H.StaticIndex(7), H.Literal(":path", "/echo/" + marker), H.Literal(":authority", authority)],
            H.Literal("sec-websocket-version", "13"));
        await h2.SendDataAsync(1, [.. MaskedFrame(0x9, Encoding.UTF8.GetBytes(_f.ApiValue)), .. MaskedFrame(0x1, Encoding.UTF8.GetBytes("early " + key))], endStream: false);
        var statuses = await h2.ReadStatusesAsync([1], TimeSpan.FromSeconds(10));
        await Task.Delay(1500);
        var origin = http1Origin ? _f.Ws1 : _f.Ws;
        Assert.DoesNotContain(origin.Received, m => m.Contains(key, StringComparison.Ordinal));
        Assert.DoesNotContain(origin.Received, m => m.Contains(_f.ApiValue, StringComparison.Ordinal));
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request"
            && ev.TryGetProperty("path", out var path) && path.GetString() is { } p && p.EndsWith("/" + marker, StringComparison.Ordinal), 10000);
        // The handshake itself was accepted (200): the refusal is the early frame's, not the handshake's.
        Assert.True(statuses.GetValueOrDefault(1) == 200 && e.GetProperty("decision").GetString() == "deny"
            && e.GetProperty("reason").GetString() is "secret-real-value" or "content-finding", $"status {statuses.GetValueOrDefault(1)}: {e.GetRawText()}");
    }

    /// <summary>Control: the plain echo over the same path is scrubbed (the fixture and the leak route work).</summary>
    [Fact]
    public async Task Control_a_plain_echo_of_the_value_in_a_frame_is_scrubbed()
    {
        var text = await LeakAsync("text");
        Assert.DoesNotContain(_f.ApiValue, text, StringComparison.Ordinal);
        Assert.Contains(_f.ApiPlaceholder, text, StringComparison.Ordinal);
    }
}

/// <summary>The WebSocket secrets fixture with an HTTP/1.1-only WebSocket origin and at most 4 connections per client.</summary>
public sealed class RedTeamRound6StreamsFixture : ProxyGuard.FunctionalTests.Secrets.SecretsFixture
{
    public const int ConnectionsPerClient = 4;

    public WebSocketFramesOrigin Ws1 { get; private set; } = null!;

    protected override string Rules => base.Rules.Replace("secrets:\n",
        $"  - name: ws\n    hosts: [localhost]\n    ports: [{Ws1.Port}]\n    action: allow\n    websocket: true\nsecrets:\n", StringComparison.Ordinal);

    protected override IDictionary<string, string>? ProxyEnvironment => new Dictionary<string, string>(base.ProxyEnvironment!)
    {
        ["PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT"] = ConnectionsPerClient.ToString(CultureInfo.InvariantCulture),
    };

    public override async Task InitializeAsync()
    {
        Ws1 = await WebSocketFramesOrigin.StartAsync(Pki.Issue(["localhost"]), Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1);
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Ws1.DisposeAsync();
    }
}

/// <summary>Red team round 6: how many upstream WebSockets one client can hold open through HTTP/2.</summary>
[Collection("proxy")]
public sealed class RedTeamRound6StreamTests : IClassFixture<RedTeamRound6StreamsFixture>
{
    private readonly RedTeamRound6StreamsFixture _f;

    public RedTeamRound6StreamTests(RedTeamRound6StreamsFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>
    /// FINDING R6-4 (medium, resource exhaustion): a client limited to 4 connections opens one HTTP/2 connection and
    /// 12 WebSocket streams on it toward an HTTP/1.1 origin; the proxy opens and holds 12 upstream connections (one per
    /// stream), none of which ever times out while idle (raw tunnels do, after 10 minutes). With the defaults (512
    /// connections per client, 100 streams per connection) one client can make the proxy hold 51,200 idle upstream
    /// connections, 100 times its connection limit. Expected: a client's WebSockets count against a bound of the
    /// client's (or the process's), past which the handshake is refused.
    /// </summary>
    [Fact]
    public async Task A_client_cannot_hold_more_upstream_websockets_than_its_connection_limit()
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(_f.Proxy.CaPath);
        using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            Proxy = new WebProxy(_f.Proxy.ProxyUrl),
            UseProxy = true,
            EnableMultipleHttp2Connections = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    if (certificate is null)
                    {
                        return false;
                    }

                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(ca);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    return chain.Build(leaf);
                },
            },
        });
        var sockets = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < 3 * RedTeamRound6StreamsFixture.ConnectionsPerClient; i++)
            {
                var ws = new ClientWebSocket();
                ws.Options.HttpVersion = HttpVersion.Version20;
                ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
                sockets.Add(ws);
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                try
                {
                    await ws.ConnectAsync(new Uri($"wss://localhost:{_f.Ws1.Port}/echo/r6-idle-{i}"), invoker, timeout.Token);
                }
                catch (WebSocketException)
                {
                    break; // refused: the bound holds
                }
            }

            var held = _f.Ws1.Handshakes.Count(h => h.Path.StartsWith("/echo/r6-idle-", StringComparison.Ordinal));
            Assert.True(held <= RedTeamRound6StreamsFixture.ConnectionsPerClient,
                $"one client with one connection made the proxy hold {held} upstream WebSocket connections (limit {RedTeamRound6StreamsFixture.ConnectionsPerClient} connections per client)");
        }
        finally
        {
            foreach (var ws in sockets)
            {
                ws.Abort();
                ws.Dispose();
            }
        }
    }
}
