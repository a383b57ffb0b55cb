using System.Globalization;

namespace ProxyGuard.Policy;

/// <summary>
/// A request URL split without any normalisation of its path (unlike <see cref="Uri"/>), so ambiguous paths stay
/// visible to the policy: <c>scheme://host[:port]/raw/path?query</c>.
/// </summary>
public sealed record TargetUrl(string Scheme, string Host, int Port, string RawPath)
{
    public static bool TryParse(string url, out TargetUrl? target, out string? error)
    {
        target = null;
        error = null;
        ArgumentNullException.ThrowIfNull(url);
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd <= 0)
        {
            error = $"'{url}' is not an absolute URL (expected scheme://host/path)";
            return false;
        }

        var scheme = url[..schemeEnd].ToLowerInvariant();
        var defaultPort = CompiledPolicy.DefaultPort(scheme);
        if (defaultPort == 0)
        {
            error = $"unsupported URL scheme '{scheme}' (expected http, https, ws or wss)";
            return false;
        }

        var rest = url[(schemeEnd + 3)..];
        var pathStart = rest.IndexOfAny(['/', '?', '#']);
        var authority = pathStart < 0 ? rest : rest[..pathStart];
        var rawPath = pathStart < 0 ? "/" : rest[pathStart..];
        if (rawPath[0] != '/')
        {
            rawPath = "/" + rawPath;
        }

        if (authority.Contains('@', StringComparison.Ordinal))
        {
            error = "URLs with user information are not supported here";
            return false;
        }

        var host = authority;
        var port = defaultPort;
        int portSeparator;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            portSeparator = close > 0 && close + 1 < authority.Length && authority[close + 1] == ':' ? close + 1 : -1;
        }
        else
        {
            portSeparator = authority.LastIndexOf(':');
        }

        if (portSeparator >= 0)
        {
            host = authority[..portSeparator];
            var portText = authority[(portSeparator + 1)..];
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
            {
                error = $"invalid port '{portText}'";
                return false;
            }
        }

        if (host.Length == 0)
        {
            error = $"'{url}' has no host";
            return false;
        }

        target = new TargetUrl(scheme, host, port, rawPath);
        return true;
    }
}
