using System.Globalization;
using System.Net;

namespace ProxyGuard.Engine.Hosting;

/// <summary>A listener address: <c>ADDR:PORT</c>, <c>[v6]:PORT</c>, <c>localhost:PORT</c> or <c>unix:/path.sock</c>.</summary>
internal sealed record ListenAddress(IPEndPoint? EndPoint, string? UnixPath)
{
    public static ListenAddress Parse(string value, string option)
    {
        if (value.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = value[5..];
            if (path.Length == 0)
            {
                throw new ArgumentException($"{option}: unix: needs a socket path");
            }

            return new ListenAddress(null, Path.GetFullPath(path));
        }

        var colon = value.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw new ArgumentException($"{option}: expected ADDR:PORT or unix:/path, got '{value}'");
        }

        var host = value[..colon].Trim('[', ']');
        IPAddress address;
        if (host == "localhost")
        {
            address = IPAddress.Loopback;
        }
        else if (!IPAddress.TryParse(host, out address!))
        {
            throw new ArgumentException($"{option}: '{host}' is not an IP address");
        }

        return new ListenAddress(new IPEndPoint(address, port), null);
    }

    public override string ToString() => UnixPath is not null ? "unix:" + UnixPath : EndPoint!.ToString();
}
