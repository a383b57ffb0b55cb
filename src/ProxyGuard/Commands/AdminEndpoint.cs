using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ProxyGuard.Commands;

/// <summary>
/// Where a command reaches the admin API. Every form <c>run --admin</c> takes is accepted (<c>ADDR:PORT</c>,
/// <c>[V6]:PORT</c>, <c>localhost:PORT</c>, <c>unix:/path.sock</c>) and so is a URL (<c>http://ADDR:PORT</c>,
/// what the start banner prints).
/// </summary>
internal sealed record AdminEndpoint(Uri BaseAddress, string? UnixPath)
{
    /// <summary>The address as the user should read it in messages.</summary>
    public string Display => UnixPath is not null ? "unix:" + UnixPath : BaseAddress.GetLeftPart(UriPartial.Authority);

    /// <summary>Parses <paramref name="value"/>; throws <see cref="ArgumentException"/> with a one-line reason naming <paramref name="option"/>.</summary>
    public static AdminEndpoint Parse(string value, string option)
    {
        var text = value.Trim();
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text[5..];
            if (path.Length == 0)
            {
                throw new ArgumentException($"{option}: unix: needs a socket path, e.g. unix:/run/proxyguard/admin.sock");
            }

            return new AdminEndpoint(new Uri("http://localhost/"), Path.GetFullPath(path));
        }

        if (text.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
            {
                throw new ArgumentException($"{option}: expected ADDR:PORT, http://ADDR:PORT or unix:/path.sock, got '{value}'");
            }

            return new AdminEndpoint(new Uri(uri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/"), null);
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is 0 or > 65535)
        {
            throw new ArgumentException($"{option}: expected ADDR:PORT, http://ADDR:PORT or unix:/path.sock, got '{value}'");
        }

        var host = text[..colon];
        var bare = host.Trim('[', ']');
        if (IPAddress.TryParse(bare, out var address))
        {
            host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        }
        else if (Uri.CheckHostName(host) != UriHostNameType.Dns)
        {
            throw new ArgumentException($"{option}: '{host}' is not a host name or IP address (expected ADDR:PORT, http://ADDR:PORT or unix:/path.sock)");
        }

        return new AdminEndpoint(new Uri(FormattableString.Invariant($"http://{host}:{port}/")), null);
    }

    /// <summary>A client that talks to the admin API directly (never through HTTP_PROXY: the proxy refuses to reach itself).</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "The returned HttpClient owns the handler (disposeHandler: true).")]
    public HttpClient CreateClient(TimeSpan timeout)
    {
        var handler = new SocketsHttpHandler { UseProxy = false };
        if (UnixPath is { } path)
        {
            handler.ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        return new HttpClient(handler, disposeHandler: true) { BaseAddress = BaseAddress, Timeout = timeout };
    }
}
