using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ProxyGuard.FunctionalTests.Secrets;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary><see cref="SecretsFixture"/> with WebSocket upgrades allowed on the origin rule.</summary>
public sealed class WebSocketSecretsFixture : SecretsFixture
{
    protected override string Rules => base.Rules.Replace(
        "    action: allow\n  - name: compressing", "    action: allow\n    websocket: true\n  - name: compressing", StringComparison.Ordinal);
}

/// <summary>
/// Issue 15, class 7: with secrets configured, a WebSocket handshake is decided, substituted as the policy says and
/// recorded; the upgraded connection carries data both ways; nothing throws; a placeholder toward an unbound host is
/// refused before the upgrade.
/// </summary>
[Collection("proxy")]
public sealed class WebSocketSecretsTests : IClassFixture<WebSocketSecretsFixture>
{
    private readonly WebSocketSecretsFixture _f;

    public WebSocketSecretsTests(WebSocketSecretsFixture fixture)
    {
        _f = fixture;
    }

    private ClientWebSocket NewSocket()
    {
        var ws = new ClientWebSocket();
        ws.Options.Proxy = new WebProxy(_f.Proxy.ProxyUrl);
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

    [Fact]
    public async Task Handshake_with_a_placeholder_is_substituted_recorded_and_the_upgraded_stream_carries_data()
    {
        using var ws = NewSocket();
        ws.Options.SetRequestHeader("Authorization", "Bearer " + _f.ApiPlaceholder);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(new Uri($"wss://localhost:{_f.Origin.HttpsPort}/ws?marker=wss1"), timeout.Token);
        var buffer = new byte[256];
        for (var i = 0; i < 3; i++)
        {
            var message = $"frame {i} through proxyguard";
            await ws.SendAsync(Encoding.UTF8.GetBytes(message), WebSocketMessageType.Text, true, timeout.Token);
            var received = await ws.ReceiveAsync(buffer, timeout.Token);
            Assert.Equal(message, Encoding.UTF8.GetString(buffer, 0, received.Count));
        }

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Contains(_f.Origin.ReceivedHeaders, h => h.TryGetValue("Authorization", out var v) && v == "Bearer " + _f.ApiValue);

        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request"
            && ev.GetProperty("path").GetString()!.StartsWith("/ws?marker=", StringComparison.Ordinal)
            && ev.GetProperty("host").GetString() == "localhost", 10000);
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal(101, e.GetProperty("status").GetInt32());
        Assert.Equal(new[] { "api" }, e.GetProperty("secretsInjected").EnumerateArray().Select(x => x.GetString() ?? string.Empty).ToArray());
        Assert.DoesNotContain("InvalidOperationException", _f.Proxy.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled", _f.Proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handshake_with_a_placeholder_toward_an_unbound_host_is_refused_before_the_upgrade()
    {
        using var ws = NewSocket();
        ws.Options.SetRequestHeader("Authorization", "Bearer " + _f.ApiPlaceholder);
        ws.Options.CollectHttpResponseDetails = true;
        var error = await Assert.ThrowsAnyAsync<WebSocketException>(() =>
            ws.ConnectAsync(new Uri($"wss://127.0.0.1:{_f.Origin.HttpsPort}/ws?marker=wss2"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);
        Assert.Equal("secret-misuse", ws.HttpResponseHeaders!["X-ProxyGuard-Reason"].Single());
        Assert.NotNull(error);
    }
}
