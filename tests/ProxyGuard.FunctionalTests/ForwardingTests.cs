using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests;

/// <summary>Large bodies, Expect: 100-continue, WebSockets and refusals through the running proxy.</summary>
[Collection("proxy")]
public sealed class ForwardingTests : IClassFixture<OriginFixture>
{
    private const long FiftyMiB = 50L * 1024 * 1024;
    private readonly OriginFixture _f;

    public ForwardingTests(OriginFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Fifty_MiB_up_and_down_intact_with_bounded_proxy_memory()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        var baseline = _f.Proxy.RssBytes();

        // Download: hash what arrives against the origin's deterministic stream.
        using (var response = await client.GetAsync(_f.HttpsUrl($"/bytes/{FiftyMiB}"), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            var received = await HashAsync(body);
            Assert.Equal(ExpectedDownloadHash(FiftyMiB), received);
        }

        // Upload: a streamed 50 MiB body; the origin answers with its length and hash.
        var upload = new DeterministicStream(FiftyMiB, seed: 7);
        using var content = new StreamContent(upload);
        using var put = await client.PostAsync(_f.HttpsUrl("/upload"), content);
        var answer = await put.Content.ReadAsStringAsync();
        Assert.Equal($"{FiftyMiB} {upload.Hash()}", answer);

        // 50 MiB each way must not be buffered: the peak stays far below the bytes moved.
        var growth = _f.Proxy.PeakRssBytes() - baseline;
        Assert.True(growth < 40L * 1024 * 1024, $"proxy peak RSS grew by {growth / 1024 / 1024} MiB");
    }

    [Fact]
    public async Task Expect_100_continue_is_honoured()
    {
        var body = _f.Dir.Write("body.txt", new string('x', 200_000));
        var result = await Cli.RunProgramAsync("curl",
            ["-sS", "--fail", "-H", "Expect: 100-continue", "--data-binary", "@" + body, _f.HttpsUrl("/upload")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.StartsWith("200000 ", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WebSocket_upgrade_is_passed_through_when_the_rule_allows_it()
    {
        using var ws = new ClientWebSocket();
        ws.Options.Proxy = new WebProxy(_f.Proxy.ProxyUrl);
        var ca = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(_f.Proxy.CaPath);
        ws.Options.RemoteCertificateValidationCallback = (_, cert, _, _) =>
        {
            using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
            chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
            return cert is not null && chain.Build(System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(cert.GetRawCertData()));
        };
        await ws.ConnectAsync(new Uri($"wss://localhost:{_f.Origin.HttpsPort}/ws"), CancellationToken.None);
        await ws.SendAsync("ping through proxyguard"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[100];
        var result = await ws.ReceiveAsync(buffer, CancellationToken.None);
        Assert.Equal("ping through proxyguard", Encoding.UTF8.GetString(buffer, 0, result.Count));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
    }

    [Fact]
    public async Task Connect_to_a_host_without_an_allow_rule_gets_403_before_tls_and_the_origin_sees_nothing()
    {
        var before = _f.Origin.Received.Count;
        using var tcp = new TcpClient();
        var proxy = new Uri(_f.Proxy.ProxyUrl);
        await tcp.ConnectAsync(proxy.Host, proxy.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT not-allowed.test:{_f.Origin.HttpsPort} HTTP/1.1\r\nHost: not-allowed.test\r\n\r\n"));
        var response = await ReadToEndAsync(stream);
        Assert.StartsWith("HTTP/1.1 403 ", response, StringComparison.Ordinal);
        Assert.Contains("X-ProxyGuard-Decision: deny\r\n", response, StringComparison.Ordinal);
        Assert.Contains("X-ProxyGuard-Rule: default\r\n", response, StringComparison.Ordinal);
        Assert.Contains("X-ProxyGuard-Reason: no-rule-allows-host-port\r\n", response, StringComparison.Ordinal);
        Assert.Contains("ProxyGuard blocked", response, StringComparison.Ordinal);
        // The explanation names the policy file, never the proxy host's directory layout (the client may be anyone).
        Assert.Contains("policy: policy.yaml)", response, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.GetDirectoryName(_f.Proxy.PolicyPath)!, response, StringComparison.Ordinal);

        // Same for a plain request, and for a port no rule lists.
        var curl = await Cli.RunProgramAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", $"http://127.0.0.1:{_f.Origin.HttpsPort + 1}/x"], _f.Dir.Path, _f.Env);
        Assert.Equal("403", curl.Stdout);
        Assert.Equal(before, _f.Origin.Received.Count);
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("host").GetString() == "not-allowed.test");
        Assert.Equal("deny", e.GetProperty("decision").GetString());
    }

    [Fact]
    public async Task Untrusted_upstream_certificate_yields_502_with_a_clear_reason()
    {
        using var otherPki = new TestPki("Untrusted CA");
        var cert = otherPki.Issue(["localhost", "127.0.0.1"]);
        await using var rogue = await TestOrigin.StartAsync(cert);
        var policy = _f.PolicyYaml(_f.Pki.WriteCaPem(_f.Dir.Path)).Replace(
            $"ports: [{_f.Origin.HttpsPort}, {_f.Origin.HttpPort}]", $"ports: [{_f.Origin.HttpsPort}, {_f.Origin.HttpPort}, {rogue.HttpsPort}]", StringComparison.Ordinal);
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, policy);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var response = await client.GetAsync($"https://localhost:{rogue.HttpsPort}/echo/x");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream-tls", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Contains("not trusted", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Empty(rogue.Received);
    }

    private static async Task<string> ReadToEndAsync(NetworkStream stream)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int n;
        while ((n = await stream.ReadAsync(chunk, cts.Token)) > 0)
        {
            buffer.Write(chunk, 0, n);
        }

        return Encoding.ASCII.GetString(buffer.ToArray());
    }

    private static async Task<string> HashAsync(Stream stream)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            sha.AppendData(buffer, 0, n);
        }

        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    private static string ExpectedDownloadHash(long n)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        var random = new Random(42);
        for (long done = 0; done < n;)
        {
            var chunk = (int)Math.Min(buffer.Length, n - done);
            random.NextBytes(buffer.AsSpan(0, chunk));
            sha.AppendData(buffer, 0, chunk);
            done += chunk;
        }

        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
