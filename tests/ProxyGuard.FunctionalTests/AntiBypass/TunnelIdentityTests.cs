using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>An origin on 127.0.0.1 reachable as several names, with intercept, pass-through and TCP rules.</summary>
public sealed class IdentityFixture : IAsyncLifetime
{
    public static readonly string[] Names = ["origin.test", "other.test", "passthru.test", "tcp.test"];

    public TempDir Dir { get; } = new();

    public TestPki Pki { get; } = new();

    public TestOrigin Origin { get; private set; } = null!;

    public ProxyProcess Proxy { get; private set; } = null!;

    public int Https => Origin.HttpsPort;

    public int Http => Origin.HttpPort;

    public async Task InitializeAsync()
    {
        Origin = await TestOrigin.StartAsync(Pki.Issue([.. Names, "127.0.0.1"]));
        var caPath = Pki.WriteCaPem(Dir.Path);
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{caPath}]
            rules:
              - name: origin
                hosts: [origin.test, other.test]
                ports: [{Https}, {Http}]
                action: allow
              - name: passthru
                hosts: [passthru.test]
                ports: [{Https}]
                inspect: false
                action: allow
              - name: raw-tcp
                hosts: [tcp.test]
                ports: [{Http}]
                protocol: tcp
                action: allow
            """;
        Proxy = await ProxyProcess.StartAsync(Path.Combine(Dir.Path, "proxy"), policy,
            Names.SelectMany(n => new[] { "--resolve", n + "=127.0.0.1" }));
    }

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        Pki.Dispose();
        Dir.Dispose();
    }

    public bool OriginSaw(string marker) => Origin.Received.Any(r => r.Contains(marker, StringComparison.Ordinal));

    public async Task<long> MintedAsync()
    {
        using var client = new HttpClient();
        var text = await client.GetStringAsync(Proxy.AdminUrl + "/metrics");
        var line = text.Split('\n').First(l => l.StartsWith("proxyguard_certificates_minted_total ", StringComparison.Ordinal));
        return (long)double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture);
    }
}

[Collection("proxy")]
public sealed class TunnelIdentityTests : IClassFixture<IdentityFixture>
{
    private readonly IdentityFixture _f;

    public TunnelIdentityTests(IdentityFixture fixture)
    {
        _f = fixture;
    }

    private static string Marker() => "/echo/" + Guid.NewGuid().ToString("N");

    [Fact]
    public async Task Control_matching_sni_host_and_target_reaches_the_origin()
    {
        var marker = Marker();
        await using var tunnel = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, $"origin.test:{_f.Https}", "origin.test");
        await tunnel.SendAsync($"GET {marker} HTTP/1.1\r\nHost: origin.test:{_f.Https}\r\nConnection: close\r\n\r\n");
        var response = await tunnel.ReadAvailableAsync();
        Assert.Equal([200], RawConnection.Statuses(response));
        Assert.True(_f.OriginSaw(marker));
    }

    [Fact]
    public async Task Sni_different_from_the_connect_target_is_refused_and_the_leaf_names_only_the_target()
    {
        var marker = Marker();
        await using var tunnel = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, $"origin.test:{_f.Https}", "other.test");
        var san = tunnel.ServerCertificate!.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["origin.test"], san.EnumerateDnsNames().ToList());

        await tunnel.SendAsync($"GET {marker} HTTP/1.1\r\nHost: origin.test:{_f.Https}\r\nConnection: close\r\n\r\n");
        var response = await tunnel.ReadAvailableAsync();
        Assert.Equal([403], RawConnection.Statuses(response));
        Assert.Equal("sni-mismatch", RawConnection.Header(response, "X-ProxyGuard-Reason"));
        await WaitDenyAsync(marker, "sni-mismatch");
        Assert.False(_f.OriginSaw(marker));
    }

    [Theory]
    [InlineData("other.test:{HTTPS}")]
    [InlineData("other.test")]
    [InlineData("origin.test:{HTTP}")]
    [InlineData("127.0.0.1:{HTTPS}")]
    public async Task Host_header_different_from_the_connect_target_is_refused(string host)
    {
        var marker = Marker();
        host = Ports(host);
        await using var tunnel = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, $"origin.test:{_f.Https}", "origin.test");
        await tunnel.SendAsync($"GET {marker} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        var response = await tunnel.ReadAvailableAsync();
        Assert.Equal([403], RawConnection.Statuses(response));
        Assert.Equal("host-mismatch", RawConnection.Header(response, "X-ProxyGuard-Reason"));
        await WaitDenyAsync(marker, "host-mismatch");
        Assert.False(_f.OriginSaw(marker));
    }

    [Theory]
    [InlineData("https://other.test:{HTTPS}", "other.test:{HTTPS}")]
    [InlineData("https://other.test:{HTTPS}", "origin.test:{HTTPS}")]
    [InlineData("http://origin.test:{HTTPS}", "origin.test:{HTTPS}")]
    [InlineData("https://origin.test:{HTTP}", "origin.test:{HTTP}")]
    public async Task Absolute_form_authority_different_from_the_connect_target_is_refused(string prefix, string host)
    {
        var marker = Marker();
        await using var tunnel = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, $"origin.test:{_f.Https}", "origin.test");
        await tunnel.SendAsync($"GET {Ports(prefix)}{marker} HTTP/1.1\r\nHost: {Ports(host)}\r\nConnection: close\r\n\r\n");
        var response = await tunnel.ReadAvailableAsync();
        var statuses = RawConnection.Statuses(response);
        Assert.Single(statuses);
        Assert.True(statuses[0] is 400 or 403, response);
        Assert.False(_f.OriginSaw(marker));
        if (statuses[0] == 403)
        {
            await WaitDenyAsync(marker, "host-mismatch");
        }
    }

    [Fact]
    public async Task Http2_authority_different_from_the_connect_target_is_refused()
    {
        var marker = Marker();
        using var client = ProxyClientsAnyCert(_f.Proxy.ProxyUrl);

        // Control: HTTP/2 through the tunnel works when :authority is the target.
        using (var ok = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"https://origin.test:{_f.Https}{marker}-ok")
               { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact }))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal(HttpVersion.Version20, ok.Version);
        }

        // The tunnel goes to origin.test; :authority names other.test (SocketsHttpHandler puts
        // the Host header into :authority).
        var request = new HttpRequestMessage(HttpMethod.Get, $"https://origin.test:{_f.Https}{marker}")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.Host = $"other.test:{_f.Https}";
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        var reason = response.Headers.GetValues("X-ProxyGuard-Reason").Single();
        Assert.Contains(reason, new[] { "host-mismatch", "sni-mismatch" });
        await WaitDenyAsync(marker, reason);
        Assert.True(_f.OriginSaw(marker + "-ok"));
        Assert.False(_f.OriginSaw(marker + " "));
        Assert.DoesNotContain(_f.Origin.Received, r => r.EndsWith(marker, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Passthrough_tunnel_with_matching_sni_reaches_the_origin_end_to_end()
    {
        var marker = Marker();
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        Assert.StartsWith("HTTP/1.1 200 ", await connection.ConnectAsync($"passthru.test:{_f.Https}"), StringComparison.Ordinal);
        await using var ssl = new SslStream(connection.Stream, leaveInnerStreamOpen: true);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "passthru.test",
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, cert, _, _) =>
                cert is not null && X509CertificateLoader.LoadCertificate(cert.GetRawCertData()).Issuer == _f.Pki.Ca.Subject,
        });
        await ssl.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET {marker} HTTP/1.1\r\nHost: passthru.test\r\nConnection: close\r\n\r\n"));
        var buffer = new byte[4096];
        var n = await ssl.ReadAsync(buffer);
        Assert.StartsWith("HTTP/1.1 200", System.Text.Encoding.ASCII.GetString(buffer, 0, n), StringComparison.Ordinal);
        Assert.True(_f.OriginSaw(marker));
    }

    [Theory]
    [InlineData("other.test", "sni-mismatch")]
    [InlineData("origin.test", "sni-mismatch")]
    [InlineData("127.0.0.1", "sni-missing")] // SslStream sends no SNI for an IP literal
    public async Task Passthrough_tunnel_with_a_different_sni_is_closed(string sni, string reason)
    {
        var before = _f.Origin.Received.Count;
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        Assert.StartsWith("HTTP/1.1 200 ", await connection.ConnectAsync($"passthru.test:{_f.Https}"), StringComparison.Ordinal);
        await using var ssl = new SslStream(connection.Stream, leaveInnerStreamOpen: true);
        var handshake = ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = sni,
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        });
        await Assert.ThrowsAnyAsync<Exception>(() => handshake.WaitAsync(TimeSpan.FromSeconds(20)));
        await _f.Proxy.WaitForEventAsync(e => TunnelDeny(e, "passthru.test", reason));
        Assert.Equal(before, _f.Origin.Received.Count);
    }

    [Theory]
    [InlineData("origin.test")]
    [InlineData("passthru.test")]
    public async Task Plain_bytes_where_tls_is_expected_are_closed(string host)
    {
        var marker = Marker();
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        Assert.StartsWith("HTTP/1.1 200 ", await connection.ConnectAsync($"{host}:{_f.Https}"), StringComparison.Ordinal);
        await connection.SendAsync($"GET {marker} HTTP/1.1\r\nHost: {host}:{_f.Https}\r\n\r\n");
        var rest = await connection.ReadAvailableAsync();
        Assert.Empty(RawConnection.Statuses(rest));
        await _f.Proxy.WaitForEventAsync(e => TunnelDeny(e, host, "not-tls"));
        Assert.False(_f.OriginSaw(marker));
    }

    [Fact]
    public async Task Tls_client_hello_on_a_tcp_tunnel_is_closed_while_plain_bytes_pass()
    {
        // Control: the TCP tunnel carries plain HTTP to the origin's HTTP port.
        var marker = Marker();
        await using (var plain = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl))
        {
            Assert.StartsWith("HTTP/1.1 200 ", await plain.ConnectAsync($"tcp.test:{_f.Http}"), StringComparison.Ordinal);
            await plain.SendAsync($"GET {marker} HTTP/1.1\r\nHost: tcp.test\r\nConnection: close\r\n\r\n");
            Assert.Equal([200], RawConnection.Statuses(await plain.ReadAvailableAsync()));
            Assert.True(_f.OriginSaw(marker));
        }

        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        Assert.StartsWith("HTTP/1.1 200 ", await connection.ConnectAsync($"tcp.test:{_f.Http}"), StringComparison.Ordinal);
        await using var ssl = new SslStream(connection.Stream, leaveInnerStreamOpen: true);
        var handshake = ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "tcp.test",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        });
        await Assert.ThrowsAnyAsync<Exception>(() => handshake.WaitAsync(TimeSpan.FromSeconds(20)));
        await _f.Proxy.WaitForEventAsync(e => TunnelDeny(e, "tcp.test", "tls-not-allowed"));
    }

    [Fact]
    public async Task Certificates_are_minted_only_for_connect_targets_the_policy_allows()
    {
        var before = await _f.MintedAsync();
        foreach (var authority in new[] { $"denied.test:{_f.Https}", $"origin.test:1", $"169.254.169.254:{_f.Https}", "[::1]:443" })
        {
            await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
            var head = await connection.ConnectAsync(authority);
            Assert.StartsWith("HTTP/1.1 403 ", head, StringComparison.Ordinal);

            // Whatever follows (a ClientHello) is never answered with a certificate.
            await using var ssl = new SslStream(connection.Stream, leaveInnerStreamOpen: true);
            await Assert.ThrowsAnyAsync<Exception>(() => ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "origin.test",
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }).WaitAsync(TimeSpan.FromSeconds(20)));
        }

        Assert.Equal(before, await _f.MintedAsync());
    }

    private string Ports(string text) =>
        text.Replace("{HTTPS}", _f.Https.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{HTTP}", _f.Http.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    private async Task WaitDenyAsync(string marker, string reason)
    {
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.TryGetProperty("path", out var p) && p.GetString() == marker);
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal(reason, e.GetProperty("reason").GetString());
    }

    private static bool TunnelDeny(JsonElement e, string host, string reason) =>
        e.GetProperty("kind").GetString() == "tunnel"
        && e.GetProperty("host").GetString() == host
        && e.GetProperty("decision").GetString() == "deny"
        && e.GetProperty("reason").GetString() == reason;

    private static HttpClient ProxyClientsAnyCert(string proxyUrl) => new(new SocketsHttpHandler
    {
        Proxy = new WebProxy(proxyUrl),
        UseProxy = true,
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true },
    })
    {
        Timeout = TimeSpan.FromSeconds(30),
    };
}
