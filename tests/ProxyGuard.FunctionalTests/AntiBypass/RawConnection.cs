using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>A raw client connection to the proxy: bytes exactly as written, optionally inside a CONNECT tunnel over TLS.</summary>
internal sealed partial class RawConnection : IAsyncDisposable
{
    private readonly TcpClient _tcp;

    private RawConnection(TcpClient tcp, Stream stream)
    {
        _tcp = tcp;
        Stream = stream;
    }

    public Stream Stream { get; private set; }

    /// <summary>The certificate the proxy presented inside the tunnel, if any.</summary>
    public X509Certificate2? ServerCertificate { get; private set; }

    public static async Task<RawConnection> OpenAsync(string proxyUrl, IPAddress? localAddress = null)
    {
        var proxy = new Uri(proxyUrl);
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        if (localAddress is not null)
        {
            tcp.Client.Bind(new IPEndPoint(localAddress, 0));
        }

        await tcp.ConnectAsync(IPAddress.Parse(proxy.Host), proxy.Port);
        tcp.NoDelay = true;
        return new RawConnection(tcp, tcp.GetStream());
    }

    /// <summary>Sends a CONNECT head and returns the proxy's response head (the connection stays open).</summary>
    public async Task<string> ConnectAsync(string authority)
    {
        await SendAsync($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        return await ReadHeadAsync();
    }

    /// <summary>CONNECT, expect 200, then TLS with <paramref name="sni"/> (null: no SNI) accepting any certificate.</summary>
    public static async Task<RawConnection> OpenTunnelAsync(string proxyUrl, string authority, string? sni, string alpn = "http/1.1")
    {
        var connection = await OpenAsync(proxyUrl);
        var head = await connection.ConnectAsync(authority);
        Assert.StartsWith("HTTP/1.1 200 ", head, StringComparison.Ordinal);
        var ssl = new SslStream(connection.Stream, leaveInnerStreamOpen: false);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = sni ?? string.Empty,
            ApplicationProtocols = [new SslApplicationProtocol(alpn)],
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        });
        connection.ServerCertificate = ssl.RemoteCertificate is { } c ? X509CertificateLoader.LoadCertificate(c.GetRawCertData()) : null;
        connection.Stream = ssl;
        return connection;
    }

    public async Task SendAsync(string text) => await SendAsync(Encoding.Latin1.GetBytes(text));

    public async Task SendAsync(byte[] bytes)
    {
        await Stream.WriteAsync(bytes);
        await Stream.FlushAsync();
    }

    /// <summary>
    /// Reads until the peer closes, or nothing more arrived for <paramref name="quiet"/> after the
    /// first bytes (the first bytes may take up to 10 s), or 20 s passed.
    /// </summary>
    public async Task<string> ReadAvailableAsync(TimeSpan? quiet = null)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        using var total = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(total.Token);
            idle.CancelAfter(buffer.Length == 0 ? TimeSpan.FromSeconds(10) : quiet ?? TimeSpan.FromSeconds(1.5));
            int n;
            try
            {
                n = await Stream.ReadAsync(chunk, idle.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Security.Authentication.AuthenticationException)
            {
                break;
            }

            if (n == 0)
            {
                break;
            }

            buffer.Write(chunk, 0, n);
        }

        return Encoding.Latin1.GetString(buffer.ToArray());
    }

    /// <summary>True when the proxy closed the connection (EOF or reset) within <paramref name="timeout"/>.</summary>
    public async Task<bool> ClosedWithinAsync(TimeSpan timeout)
    {
        var chunk = new byte[4096];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                if (await Stream.ReadAsync(chunk, cts.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
        {
            return true;
        }
    }

    /// <summary>Every status code of every response in <paramref name="raw"/>.</summary>
    public static List<int> Statuses(string raw) =>
        StatusLine().Matches(raw).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    public static string? Header(string raw, string name)
    {
        var match = Regex.Match(raw, "^" + Regex.Escape(name) + @":\s*([^\r\n]*)\r?$", RegexOptions.Multiline | RegexOptions.IgnoreCase);
        return match.Success ? match.Groups[1].Value : null;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Stream.DisposeAsync();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
        }

        _tcp.Dispose();
    }

    private async Task<string> ReadHeadAsync()
    {
        var head = new StringBuilder();
        var one = new byte[1];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await Stream.ReadAsync(one, cts.Token) == 0)
            {
                break;
            }

            head.Append((char)one[0]);
        }

        if (head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal)
            && Header(head.ToString(), "Content-Length") is { } length && int.TryParse(length, out var n) && n > 0)
        {
            var body = new byte[n];
            await Stream.ReadExactlyAsync(body, cts.Token);
            head.Append(Encoding.Latin1.GetString(body));
        }

        return head.ToString();
    }

    [GeneratedRegex(@"HTTP/1\.[01] (\d{3}) ")]
    private static partial Regex StatusLine();
}
