using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ProxyGuard.Tests.Shared;

/// <summary>A minimal HTTP/1.1 server on 127.0.0.1 (free port) speaking enough of Vault's KV v2 API.</summary>
public sealed class FakeVaultServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _disposed;

    private readonly X509Certificate2? _certificate;

    public FakeVaultServer(X509Certificate2? certificate = null)
    {
        _certificate = certificate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        var scheme = certificate is null ? "http" : "https";
        Address = new Uri($"{scheme}://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _loop = Task.Run(AcceptLoopAsync);
    }

    public Uri Address { get; }

    /// <summary>Path (without query) → data.data JSON object text.</summary>
    public ConcurrentDictionary<string, string> Secrets { get; } = new(StringComparer.Ordinal);

    /// <summary>When set, every request is answered with this status (e.g. 403, 500, 503).</summary>
    public int? ForcedStatus { get; set; }

    /// <summary>When true, requests are read but never answered.</summary>
    public bool Stall { get; set; }

    public string RequiredToken { get; set; } = "s.synthetic-vault-token";

    /// <summary>When set and it returns a location for a request path, the answer is <see cref="RedirectStatus"/> with that Location.</summary>
    public Func<string, string?>? RedirectTo { get; set; }

    public int RedirectStatus { get; set; } = 307;

    public string? RequiredNamespace { get; set; }

    public ConcurrentQueue<VaultRequest> Requests { get; } = new();

    public int RequestCount => Requests.Count;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _loop;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                Stream stream = client.GetStream();
                if (_certificate is not null)
                {
                    var ssl = new SslStream(stream);
                    await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stop.Token);
                    stream = ssl;
                }
                var head = await ReadHeadAsync(stream);
                if (head is null)
                {
                    return;
                }

                var lines = head.Split("\r\n");
                var requestLine = lines[0].Split(' ');
                var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                foreach (var line in lines.Skip(1))
                {
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    if (colon > 0)
                    {
                        headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
                    }
                }

                var path = requestLine[1].Split('?')[0];
                Requests.Enqueue(new VaultRequest(requestLine[0], path, headers));
                if (Stall)
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                }

                var (status, body) = Answer(path, headers);
                var location = string.Empty;
                if (RedirectTo?.Invoke(requestLine[1]) is { } target)
                {
                    (status, body, location) = (RedirectStatus, "{}", $"Location: {target}\r\n");
                }

                var bytes = Encoding.UTF8.GetBytes(body);
                var response = $"HTTP/1.1 {status} X\r\n{location}Content-Type: application/json\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(response));
                await stream.WriteAsync(bytes);
                await stream.FlushAsync();
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException
                or System.Security.Authentication.AuthenticationException)
            {
            }
        }
    }

    private (int Status, string Body) Answer(string path, Dictionary<string, string> headers)
    {
        if (ForcedStatus is { } forced)
        {
            return (forced, "{\"errors\":[\"forced\"]}");
        }

        if (!headers.TryGetValue("X-Vault-Token", out var token) || token != RequiredToken)
        {
            return (403, "{\"errors\":[\"permission denied\"]}");
        }

        if (RequiredNamespace is not null && (!headers.TryGetValue("X-Vault-Namespace", out var ns) || ns != RequiredNamespace))
        {
            return (403, "{\"errors\":[\"permission denied\"]}");
        }

        if (!Secrets.TryGetValue(path, out var data))
        {
            return (404, "{\"errors\":[]}");
        }

        return (200, "{\"request_id\":\"r\",\"lease_duration\":0,\"data\":{\"data\":" + data + ",\"metadata\":{\"version\":1}}}");
    }

    private static async Task<string?> ReadHeadAsync(Stream stream)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (buffer.Count < 64 * 1024)
        {
            var read = await stream.ReadAsync(one);
            if (read == 0)
            {
                return null;
            }

            buffer.Add(one[0]);
            var n = buffer.Count;
            if (n >= 4 && buffer[n - 4] == '\r' && buffer[n - 3] == '\n' && buffer[n - 2] == '\r' && buffer[n - 1] == '\n')
            {
                return Encoding.ASCII.GetString(buffer.ToArray(), 0, n - 4);
            }
        }

        return null;
    }
}

public sealed record VaultRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers);
