using System.IO.Compression;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// A hostile HTTPS origin on 127.0.0.1 for the adversarial kit: it writes raw HTTP/1.1 responses (no framework in
/// the way), each mode carrying a real secret value it "knows" through a different part of the response. Modes
/// are the first path segment: <c>reason</c> (the status line's reason phrase), <c>header-name</c>, <c>header-value</c>,
/// <c>trailer</c> (chunked with a trailer field), <c>gzip-gzip</c>, <c>gzip-identity</c>, <c>te-gzip</c>
/// (Transfer-Encoding: gzip, chunked), <c>unknown-coding</c>, <c>json</c> (the value JSON-escaped), <c>plain</c>.
/// Bounded: one request per connection, 64 KiB of request head at most, stops on dispose.
/// </summary>
public sealed class HostileOrigin : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly X509Certificate2 _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    private HostileOrigin(X509Certificate2 certificate)
    {
        _certificate = certificate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accept = AcceptAsync();
    }

    public int Port { get; }

    /// <summary>The secret the origin leaks.</summary>
    public string Known { get; set; } = string.Empty;

    public static HostileOrigin Start(X509Certificate2 certificate) => new(certificate);

    public static readonly string[] Modes =
        ["reason", "header-name", "header-value", "trailer", "gzip-gzip", "gzip-identity", "te-gzip", "unknown-coding", "json", "plain"];

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(20));
                await using var tls = new SslStream(client.GetStream());
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = _certificate,
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                }, timeout.Token);
                var head = await ReadHeadAsync(tls, timeout.Token);
                var target = head.Split(' ', 3) is [_, var t, _] ? t : "/plain";
                var mode = target.Trim('/').Split('/', '?')[0];
                await tls.WriteAsync(
                    mode switch
                    {
                        "range" => RangeResponse(head),
                        "partial" => PartialResponse(target),
                        _ => Response(mode),
                    }, timeout.Token);
                await tls.FlushAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
            {
            }
        }
    }

    private static async Task<string> ReadHeadAsync(Stream stream, CancellationToken ct)
    {
        var head = new StringBuilder();
        var buffer = new byte[1];
        while (head.Length < 65536 && !head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(buffer, ct) == 0)
            {
                break;
            }

            head.Append((char)buffer[0]);
        }

        return head.ToString();
    }

    private byte[] Response(string mode)
    {
        var known = Known;
        var body = Encoding.UTF8.GetBytes($"{{\"mode\":\"{mode}\",\"known\":\"{known}\"}}");
        return mode switch
        {
            "reason" => Raw($"HTTP/1.1 200 OK {known}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
            "header-name" => Raw($"HTTP/1.1 200 OK\r\nX-{known}: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
            "header-value" => Raw($"HTTP/1.1 200 OK\r\nX-Leak: {known}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
            "trailer" => Raw($"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Leak\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\nX-Leak: {known}\r\n\r\n"),
            "gzip-gzip" => Framed("Content-Encoding: gzip, gzip", Gzip(Gzip(body))),
            "gzip-identity" => Framed("Content-Encoding: gzip, identity", Gzip(body)),
            "te-gzip" => Chunked("Transfer-Encoding: gzip, chunked", Gzip(body)),
            "unknown-coding" => Framed("Content-Encoding: zstd", body),
            "json" => Framed("Content-Type: application/json", Encoding.UTF8.GetBytes($"{{\"known\":{System.Text.Json.JsonSerializer.Serialize(known)}}}")),
            // Round 3 (not in Modes): a stored value returned the way GitHub's contents/blobs API returns a file (base64
            // wrapped at 60 columns with the JSON escape \n), and a value inside JSON state carried in a redirect URL.
            "github-base64" => Framed("Content-Type: application/json", Encoding.UTF8.GetBytes(
                "{\"encoding\":\"base64\",\"content\":\"" + string.Join("\\n", Convert.ToBase64String(Encoding.UTF8.GetBytes("token=" + known + "\n")).Chunk(60).Select(c => new string(c))) + "\\n\"}")),
            "url-of-json" => Raw($"HTTP/1.1 302 Found\r\nLocation: https://localhost/cb?state={Uri.EscapeDataString(System.Text.Json.JsonSerializer.Serialize(new { t = known }))}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            // Round 3 fixes (not in Modes): HTML inside a JSON string (System.Text.Json's default encoder writes '&' as
            // \u0026), and base64 of the value wrapped every 8 characters, percent-encoded in a redirect URL (line breaks as %0A, '+',
            // '/', '=' as %2B %2F %3D).
            "html-in-json" => Framed("Content-Type: application/json", Encoding.UTF8.GetBytes(
                "{\"html\":" + System.Text.Json.JsonSerializer.Serialize("<p>" + WebUtility.HtmlEncode(known) + "</p>") + "}")),
            "b64-in-url" => Raw($"HTTP/1.1 302 Found\r\nLocation: https://localhost/cb?blob={Uri.EscapeDataString(string.Join("\n", Convert.ToBase64String(Encoding.UTF8.GetBytes("token=" + known)).Chunk(8).Select(c => new string(c))))}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            // Round 4 (not in Modes): base64 of an escaped value. A JWT-style token whose payload is JSON holding the value
            // (base64url, unpadded), and OAuth-style state: base64 of a percent-encoded query string holding it.
            "jwt-of-json" => Framed("Content-Type: application/json", Encoding.UTF8.GetBytes("{\"id_token\":\"eyJhbGciOiJub25lIn0."
                + Convert.ToBase64String(Encoding.UTF8.GetBytes("{\"sub\":\"agent\",\"tok\":" + System.Text.Json.JsonSerializer.Serialize(known) + "}"))
                    .TrimEnd('=').Replace('+', '-').Replace('/', '_') + ".\"}")),
            "b64-of-url" => Raw($"HTTP/1.1 302 Found\r\nLocation: https://localhost/cb?state={Convert.ToBase64String(Encoding.UTF8.GetBytes("next=%2F&token=" + Uri.EscapeDataString(known))).TrimEnd('=').Replace('+', '-').Replace('/', '_')}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            // Round 6 (not in Modes): a Kubernetes Secret manifest (its data field base64) stored in a repository and
            // served the way GitHub's contents API serves a file (base64 again, wrapped at 60 columns with \n).
            "k8s-in-github" => Framed("Content-Type: application/json", Encoding.UTF8.GetBytes(
                "{\"encoding\":\"base64\",\"content\":\"" + string.Join("\\n", Convert.ToBase64String(Encoding.UTF8.GetBytes(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ndata:\n  token: " + Convert.ToBase64String(Encoding.UTF8.GetBytes(known)) + "\n"))
                    .Chunk(60).Select(c => new string(c))) + "\\n\"}")),
            _ => Framed("Content-Type: application/json", body),
        };
    }

    /// <summary>
    /// Round 3 (not in Modes): a stored document holding the value, served with byte ranges (as any static file, object
    /// store or raw-content endpoint is): "Range: bytes=S-E" gets 206 with that slice.
    /// </summary>
    private byte[] RangeResponse(string head)
    {
        var document = Encoding.UTF8.GetBytes($"{{\"stored\":\"{Known}\"}}");
        // "Range" or the legacy "Request-Range"; of several ranges the first is served; "-N" is the last N bytes.
        var line = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Range: bytes=", StringComparison.OrdinalIgnoreCase)
            || l.StartsWith("Request-Range: bytes=", StringComparison.OrdinalIgnoreCase));
        var range = line?[(line.IndexOf('=', StringComparison.Ordinal) + 1)..].Split(',')[0].Trim();
        if (range is not null && range.StartsWith('-') && int.TryParse(range[1..], out var suffix) && suffix > 0)
        {
            range = $"{Math.Max(0, document.Length - suffix)}-{document.Length - 1}";
        }

        if (range?.Split('-') is not [var s, var e] || !int.TryParse(s, out var start) || !int.TryParse(e, out var end) || start >= document.Length)
        {
            return Framed("Content-Type: application/json\r\nAccept-Ranges: bytes", document);
        }

        end = Math.Min(end, document.Length - 1);
        var slice = document[start..(end + 1)];
        return [.. Raw($"HTTP/1.1 206 Partial Content\r\nContent-Type: application/json\r\nContent-Range: bytes {start}-{end}/{document.Length}\r\nContent-Length: {slice.Length}\r\nConnection: close\r\n\r\n"), .. slice];
    }

    /// <summary>
    /// Round 3 (not in Modes): the same stored document, but the origin answers 206 with an 8-byte slice whether or
    /// not a Range was asked for; the slice starts at the query's <c>s</c> (<c>/partial?s=16</c>).
    /// </summary>
    private byte[] PartialResponse(string target)
    {
        var document = Encoding.UTF8.GetBytes($"{{\"stored\":\"{Known}\"}}");
        var query = target.Contains("?s=", StringComparison.Ordinal) ? target[(target.IndexOf("?s=", StringComparison.Ordinal) + 3)..] : "0";
        var start = int.TryParse(query, out var s) ? Math.Clamp(s, 0, document.Length - 1) : 0;
        var end = Math.Min(start + 7, document.Length - 1);
        var slice = document[start..(end + 1)];
        return [.. Raw($"HTTP/1.1 206 Partial Content\r\nContent-Type: application/json\r\nContent-Range: bytes {start}-{end}/{document.Length}\r\nContent-Length: {slice.Length}\r\nConnection: close\r\n\r\n"), .. slice];
    }

    private static byte[] Raw(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Framed(string header, byte[] body) =>
        [.. Raw($"HTTP/1.1 200 OK\r\n{header}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];

    private static byte[] Chunked(string header, byte[] body) =>
        [.. Raw($"HTTP/1.1 200 OK\r\n{header}\r\nConnection: close\r\n\r\n{body.Length:x}\r\n"), .. body, .. Raw("\r\n0\r\n\r\n")];

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accept;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
