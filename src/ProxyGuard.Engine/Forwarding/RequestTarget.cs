namespace ProxyGuard.Engine.Forwarding;

/// <summary>Where a request goes, parsed strictly from what the client sent.</summary>
internal sealed record RequestTarget(string Scheme, string Host, int Port, string RawPath, string RawQuery)
{
    public string Authority => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    public string DestinationPrefix => $"{Scheme}://{Authority}";

    /// <summary>
    /// Splits an absolute-form target (<c>http://host[:port]/path?query</c>) without any
    /// normalisation of the path. Userinfo and fragments are refused.
    /// </summary>
    public static bool TryParseAbsolute(string rawTarget, out string scheme, out string authority, out string rawPath, out string rawQuery)
    {
        scheme = authority = rawPath = rawQuery = string.Empty;
        int schemeEnd;
        if (rawTarget.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            scheme = "http";
            schemeEnd = 7;
        }
        else if (rawTarget.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            scheme = "https";
            schemeEnd = 8;
        }
        else
        {
            return false;
        }

        var rest = rawTarget.AsSpan(schemeEnd);
        var authorityEnd = rest.IndexOfAny('/', '?');
        if (authorityEnd < 0)
        {
            authorityEnd = rest.Length;
        }

        authority = rest[..authorityEnd].ToString();
        if (authority.Length == 0 || authority.Contains('@', StringComparison.Ordinal) || rawTarget.Contains('#', StringComparison.Ordinal))
        {
            return false;
        }

        var pathAndQuery = rest[authorityEnd..].ToString();
        SplitPathAndQuery(pathAndQuery.Length == 0 ? "/" : pathAndQuery, out rawPath, out rawQuery);
        if (!rawPath.StartsWith('/'))
        {
            rawPath = "/" + rawPath;
        }

        return true;
    }

    public static void SplitPathAndQuery(string pathAndQuery, out string rawPath, out string rawQuery)
    {
        var q = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        rawPath = q < 0 ? pathAndQuery : pathAndQuery[..q];
        rawQuery = q < 0 ? string.Empty : pathAndQuery[(q + 1)..];
    }

    /// <summary>Splits <c>host</c>, <c>host:port</c> or <c>[v6]:port</c> (a Host header or URI authority).</summary>
    public static bool TrySplitHostPort(string authority, out string host, out int? port)
    {
        host = authority;
        port = null;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }

            host = authority[1..close];
            var after = authority[(close + 1)..];
            if (after.Length == 0)
            {
                return true;
            }

            if (after[0] != ':')
            {
                return false;
            }

            return TryPort(after[1..], out port);
        }

        var colon = authority.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            return authority.Length > 0;
        }

        if (authority.IndexOf(':', colon + 1) >= 0)
        {
            return false;
        }

        host = authority[..colon];
        return host.Length > 0 && TryPort(authority[(colon + 1)..], out port);
    }

    private static bool TryPort(string text, out int? port)
    {
        port = null;
        if (text.Length is 0 or > 5 || !text.All(char.IsAsciiDigit))
        {
            return false;
        }

        var value = int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        port = value;
        return value is >= 1 and <= 65535;
    }
}
