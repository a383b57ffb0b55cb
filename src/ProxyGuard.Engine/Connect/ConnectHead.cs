using System.Buffers;
using System.Text;

namespace ProxyGuard.Engine.Connect;

/// <summary>A parsed <c>CONNECT host:port HTTP/1.x</c> request head.</summary>
internal sealed class ConnectHead
{
    private ConnectHead(string host, int port, string? proxyAuthorization, string? userAgent)
    {
        Host = host;
        Port = port;
        ProxyAuthorization = proxyAuthorization;
        UserAgent = userAgent;
    }

    /// <summary>The target host as sent (brackets removed from IPv6 literals); not yet normalised.</summary>
    public string Host { get; }

    public int Port { get; }

    public string? ProxyAuthorization { get; }

    public string? UserAgent { get; }

    public static ReadOnlySpan<byte> Prefix => "CONNECT "u8;

    /// <summary>
    /// Parses a complete head (request line and header lines, ending with an empty line). Strict:
    /// rejects anything an upstream or another proxy might read differently.
    /// </summary>
    public static bool TryParse(ReadOnlySequence<byte> head, out ConnectHead? result, out string error)
    {
        result = null;
        var bytes = head.IsSingleSegment ? head.FirstSpan : head.ToArray();
        foreach (var b in bytes)
        {
            if (b == 0 || b >= 0x80)
            {
                error = "the CONNECT head contains NUL or non-ASCII bytes";
                return false;
            }
        }

        var text = Encoding.ASCII.GetString(bytes);
        if (!text.EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            error = "the CONNECT head is incomplete";
            return false;
        }

        var lines = text[..^4].Split("\r\n");
        foreach (var line in lines)
        {
            if (line.Contains('\r', StringComparison.Ordinal) || line.Contains('\n', StringComparison.Ordinal))
            {
                error = "bare CR or LF in the CONNECT head";
                return false;
            }
        }

        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || requestLine[0] != "CONNECT")
        {
            error = "malformed CONNECT request line";
            return false;
        }

        if (requestLine[2] is not ("HTTP/1.1" or "HTTP/1.0"))
        {
            error = "unsupported HTTP version in CONNECT";
            return false;
        }

        if (!TrySplitAuthority(requestLine[1], out var host, out var port))
        {
            error = "the CONNECT target must be host:port";
            return false;
        }

        string? auth = null;
        string? userAgent = null;
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 1; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0 || line[0] is ' ' or '\t')
            {
                error = "obsolete line folding or an empty header line in the CONNECT head";
                return false;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || !IsToken(line.AsSpan(0, colon)))
            {
                error = "malformed header line in the CONNECT head";
                return false;
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(' ', '\t');
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && value != "0"
                || name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                error = "a CONNECT request must not carry a body";
                return false;
            }

            if (name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                if (!seen.Add(name))
                {
                    error = "duplicate Proxy-Authorization header";
                    return false;
                }

                auth = value;
            }
            else if (name.Equals("User-Agent", StringComparison.OrdinalIgnoreCase))
            {
                userAgent = value;
            }
        }

        result = new ConnectHead(host, port, auth, userAgent);
        error = string.Empty;
        return true;
    }

    /// <summary>Splits <c>host:port</c> or <c>[v6]:port</c>. The port is required and must be 1..65535.</summary>
    public static bool TrySplitAuthority(string authority, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        string portText;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= authority.Length || authority[close + 1] != ':')
            {
                return false;
            }

            host = authority[1..close];
            portText = authority[(close + 2)..];
        }
        else
        {
            var colon = authority.LastIndexOf(':');
            if (colon <= 0 || authority.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                return false;
            }

            host = authority[..colon];
            portText = authority[(colon + 1)..];
        }

        if (host.Length == 0 || portText.Length is 0 or > 5)
        {
            return false;
        }

        foreach (var c in portText)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        port = int.Parse(portText, System.Globalization.CultureInfo.InvariantCulture);
        return port is >= 1 and <= 65535;
    }

    private static bool IsToken(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return true;
    }
}
