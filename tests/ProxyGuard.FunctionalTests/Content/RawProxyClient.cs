using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Content;

/// <summary>A parsed HTTP/1.1 response read from a raw socket.</summary>
internal sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body, string Raw)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var v) ? v : null;
}

/// <summary>
/// Speaks HTTP/1.1 by hand through the proxy: CONNECT, TLS against the ProxyGuard CA, then a request written in
/// separate pieces (for example one chunk of a chunked body per write, with a pause in between).
/// </summary>
internal static class RawProxyClient
{
    /// <summary>Sends CONNECT host:port; returns the refusal when the proxy answers with anything but 200.</summary>
    public static async Task<(TcpClient Tcp, RawResponse? Refusal)> ConnectAsync(ProxyProcess proxy, string host, int port)
    {
        var tcp = new TcpClient();
        var uri = new Uri(proxy.ProxyUrl);
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"));
        var head = await ReadHeadAsync(stream);
        if (!head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
        {
            var rest = await ReadToEndAsync(stream);
            var refusal = Parse(head + rest);
            tcp.Dispose();
            return (tcp, refusal);
        }

        return (tcp, null);
    }

    /// <summary>Sends a request through an intercepted tunnel, writing each piece separately with a pause.</summary>
    public static async Task<RawResponse> SendAsync(ProxyProcess proxy, string host, int port, IReadOnlyList<byte[]> pieces)
    {
        var (tcp, refusal) = await ConnectAsync(proxy, host, port);
        if (refusal is not null)
        {
            return refusal;
        }

        using (tcp)
        {
            var ca = X509CertificateLoader.LoadCertificateFromFile(proxy.CaPath);
            await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, _) =>
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
            });
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
            });
            foreach (var piece in pieces)
            {
                await tls.WriteAsync(piece);
                await tls.FlushAsync();
                await Task.Delay(150);
            }

            return Parse(await ReadToEndAsync(tls));
        }
    }

    private static async Task<string> ReadHeadAsync(Stream stream)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (bytes.Count < 64 * 1024)
        {
            if (await stream.ReadAsync(one, cts.Token) == 0)
            {
                break;
            }

            bytes.Add(one[0]);
            if (bytes.Count >= 4 && bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n')
            {
                break;
            }
        }

        return Encoding.ASCII.GetString(bytes.ToArray());
    }

    private static async Task<string> ReadToEndAsync(Stream stream)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[8192];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            int n;
            while ((n = await stream.ReadAsync(chunk, cts.Token)) > 0)
            {
                buffer.Write(chunk, 0, n);
            }
        }
        catch (IOException)
        {
            // The proxy may reset after its answer; what arrived is enough.
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static RawResponse Parse(string raw)
    {
        var end = raw.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = end < 0 ? raw : raw[..end];
        var body = end < 0 ? string.Empty : raw[(end + 4)..];
        var lines = head.Split("\r\n");
        var status = lines[0].Split(' ') is { Length: >= 2 } parts && int.TryParse(parts[1], out var s) ? s : 0;
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }
        }

        return new RawResponse(status, headers, body, raw);
    }
}
