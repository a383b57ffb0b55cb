using System.IO.Compression;
using System.Net;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Secrets;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>A proxy holding one secret bound to the hostile HTTP/2 origin.</summary>
public sealed class HostileH2OriginFixture : IAsyncLifetime
{
    /// <summary>A real value with characters that change under JSON, URL and HTML escaping.</summary>
    public string Value { get; } = "pgsynthetic-\"h2\\" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(10)) + "-/<&>+ ";

    public TempDir Dir { get; } = new();

    public TestPki Pki { get; } = new();

    public HostileH2Origin Origin { get; private set; } = null!;

    public ProxyProcess Proxy { get; private set; } = null!;

    public string Placeholder { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        Origin = await HostileH2Origin.StartAsync(Pki.Issue(["localhost"]));
        Origin.Known = Value;
        var caPath = Pki.WriteCaPem(Dir.Path);
        Proxy = await ProxyProcess.StartAsync(Dir.File("proxy"), $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{caPath}]
            rules:
              - name: hostile-h2
                hosts: [localhost]
                ports: [{Origin.Port}]
                action: allow
            secrets:
              - name: hostile-h2
                value: env:PG_HOSTILE_H2_SECRET
                sandbox_env: HOSTILE_H2_TOKEN
                hosts: [localhost]
                in: [headers]
            """, null, new Dictionary<string, string> { ["PG_HOSTILE_H2_SECRET"] = Value });
        Placeholder = (await Proxy.EnvAsync())["HOSTILE_H2_TOKEN"];
    }

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        Pki.Dispose();
        Dir.Dispose();
    }
}

/// <summary>
/// Issue 15, class 4 over HTTP/2 upstream: trailers, header values and their encoded forms, brotli and stacked
/// gzip+br bodies, a body dripped one byte per DATA frame, JSON-escaped and echoed values never bring the real
/// value (or its base64, percent or JSON-escaped form) to the sandbox, whether the sandbox speaks HTTP/2 or
/// HTTP/1.1 to the proxy.
/// </summary>
[Collection("proxy")]
public sealed class HostileH2OriginTests : IClassFixture<HostileH2OriginFixture>
{
    private readonly HostileH2OriginFixture _f;

    public HostileH2OriginTests(HostileH2OriginFixture fixture)
    {
        _f = fixture;
    }

    public static TheoryData<string> ModesOnly => [.. HostileH2Origin.Modes];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var mode in HostileH2Origin.Modes)
        {
            data.Add(mode, "2.0");
            data.Add(mode, "1.1");
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task No_part_of_a_hostile_http2_response_carries_the_real_value(string mode, string clientVersion)
    {
        var version = clientVersion == "2.0" ? HttpVersion.Version20 : HttpVersion.Version11;
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath, version);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/{mode}")
        {
            Version = version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsByteArrayAsync();
        var text = new StringBuilder()
            .Append((int)response.StatusCode).Append(' ').Append(response.ReasonPhrase).Append('\n')
            .Append(response.Headers).Append(response.Content.Headers).Append(response.TrailingHeaders)
            .Append(Encoding.UTF8.GetString(body)).Append(Encoding.Latin1.GetString(body))
            .ToString();
        var leaks = SecretForms.FoundIn(text, [("hostile-h2", _f.Value)]);
        Assert.True(leaks.Count == 0, $"{mode} over {clientVersion}: {string.Join(", ", leaks)} in:\n{text}");
        Assert.Equal(version, response.Version);
        Assert.Contains("HTTP/2", _f.Origin.Protocols);

        // Every mode is decodable: it arrives (200) with the value scrubbed, and a body that carried the value
        // carries the placeholder instead (so it was decoded and scrubbed, not dropped).
        Assert.True(response.StatusCode == HttpStatusCode.OK,
            $"{mode}: {(int)response.StatusCode} {text}\n{string.Join('\n', _f.Proxy.Output.Split('\n').TakeLast(15))}");
        if (mode is "br" or "gzip-br" or "br-br" or "drip" or "drip-br" or "json" or "echo")
        {
            Assert.Contains(_f.Placeholder, Encoding.UTF8.GetString(body), StringComparison.Ordinal);
        }
    }

    /// <summary>The attacks are real: straight to the origin (no proxy), every mode delivers the value.</summary>
    [Theory]
    [MemberData(nameof(ModesOnly))]
    public async Task Without_the_proxy_every_mode_delivers_the_value(string mode)
    {
        using var handler = new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
            AutomaticDecompression = DecompressionMethods.None,
        };
        using var client = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/{mode}")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Value);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        foreach (var coding in response.Content.Headers.ContentEncoding.Reverse())
        {
            using var input = new MemoryStream(body);
            await using Stream decoder = coding == "br"
                ? new BrotliStream(input, CompressionMode.Decompress)
                : new GZipStream(input, CompressionMode.Decompress);
            using var output = new MemoryStream();
            await decoder.CopyToAsync(output);
            body = output.ToArray();
        }

        var text = $"{response.Headers}{response.Content.Headers}{response.TrailingHeaders}{Encoding.UTF8.GetString(body)}";
        Assert.NotEmpty(SecretForms.FoundIn(text, [("hostile-h2", _f.Value)]));
    }
}
