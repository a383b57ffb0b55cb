using System.Net;

namespace ProxyGuard.Policy;

/// <summary>Parses and validates one host pattern from the policy file.</summary>
internal static class HostPattern
{
    internal enum Kind
    {
        Any,
        Exact,
        Wildcard,
        Network,
    }

    internal readonly record struct Parsed(Kind Kind, string Value, IPNetwork Network);

    private static readonly System.Buffers.SearchValues<char> s_digitsAndDots = System.Buffers.SearchValues.Create("0123456789.");

    /// <summary>
    /// Parses <paramref name="raw"/>; on failure returns false with an error message. <paramref name="hasPortsKey"/>: the
    /// list sits next to a <c>ports</c> key (a rule), so a port or path written into a host is pointed there; elsewhere
    /// (secrets, content rules, exemptions, budgets) hosts apply to every port and path.
    /// </summary>
    public static bool TryParse(string raw, bool allowAny, out Parsed parsed, out string? error) => TryParse(raw, allowAny, hasPortsKey: true, out parsed, out error);

    /// <inheritdoc cref="TryParse(string, bool, out Parsed, out string?)"/>
    public static bool TryParse(string raw, bool allowAny, bool hasPortsKey, out Parsed parsed, out string? error)
    {
        parsed = default;
        error = null;
        if (raw == "*")
        {
            if (!allowAny)
            {
                error = "'*' (any host) is not allowed here";
                return false;
            }

            parsed = new Parsed(Kind.Any, "*", default);
            return true;
        }

        if (raw.Contains("://", StringComparison.Ordinal))
        {
            error = $"invalid host pattern '{raw}': write a host name ('api.example.com' or '*.example.com'), not a URL; the port goes in 'ports' and the path in 'paths'";
            return false;
        }

        // A port written into the host ('*.npmjs.org:443', 'example.com:8443', '[::1]:443'), before anything reads the
        // colon as IPv6.
        var portAt = raw.StartsWith('[') ? raw.IndexOf("]:", StringComparison.Ordinal) + 1 : raw.AsSpan().Count(':') == 1 ? raw.IndexOf(':', StringComparison.Ordinal) : 0;
        if (portAt > 0)
        {
            var port = raw[(portAt + 1)..];
            var example = port.Length is > 0 and <= 5 && port.All(char.IsAsciiDigit) ? port : "443";
            error = hasPortsKey
                ? $"invalid host pattern '{raw}': a host pattern has no port; put the port in 'ports' (e.g. ports: [{example}])"
                : $"invalid host pattern '{raw}': a host pattern has no port; hosts here apply to every port, so write '{raw[..portAt]}'";
            return false;
        }

        // A path written into a host name ('api.example.com/v1'); a '/' after an IP address is a CIDR.
        var slash = raw.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && !raw.AsSpan(0, slash).Contains(':') && raw.AsSpan(0, slash).ContainsAnyExcept(s_digitsAndDots))
        {
            error = hasPortsKey
                ? $"invalid host pattern '{raw}': a host pattern has no path; write the host ('{raw[..slash]}') and put the path in 'paths' (e.g. paths: [\"{raw[slash..]}/**\"])"
                : $"invalid host pattern '{raw}': a host pattern has no path; write the host alone ('{raw[..slash]}')";
            return false;
        }

        if (raw.StartsWith("*.", StringComparison.Ordinal))
        {
            var rest = raw[2..];
            if (rest.Contains('*', StringComparison.Ordinal))
            {
                error = "a wildcard is allowed only as the whole leading label ('*.example.com')";
                return false;
            }

            if (!HostNormalizer.TryNormalize(rest, out var suffix, out var suffixError))
            {
                error = $"invalid host pattern '{raw}': {suffixError}";
                return false;
            }

            if (HostNormalizer.TryGetAddress(suffix, out _))
            {
                error = $"invalid host pattern '{raw}': a wildcard cannot precede an IP address (use a CIDR)";
                return false;
            }

            if (PublicSuffixList.SpannedSuffix(suffix) is { } spanned)
            {
                error = spanned == suffix
                    ? $"wildcard '{raw}' spans the public suffix '{suffix}'; name a registrable domain (e.g. '*.example.{suffix}')"
                    : $"wildcard '{raw}' spans the public suffix '{spanned}' (names below it belong to different owners); list the hosts instead";
                return false;
            }

            parsed = new Parsed(Kind.Wildcard, "." + suffix, default);
            return true;
        }

        if (raw.Contains('*', StringComparison.Ordinal))
        {
            error = $"invalid host pattern '{raw}': a wildcard is allowed only as the whole leading label ('*.example.com')";
            return false;
        }

        if (raw.Contains('/', StringComparison.Ordinal))
        {
            if (!TryParseCidr(raw, out var network, out error))
            {
                return false;
            }

            parsed = new Parsed(Kind.Network, network.ToString(), network);
            return true;
        }

        if (!HostNormalizer.TryNormalize(raw, out var normalized, out var normalizeError))
        {
            error = $"invalid host '{raw}': {normalizeError}";
            return false;
        }

        parsed = new Parsed(Kind.Exact, normalized, default);
        return true;
    }

    /// <summary>Parses a CIDR (<c>10.0.0.0/8</c>, <c>fd00::/8</c>) or a single address (as /32 or /128). Host bits must be zero.</summary>
    public static bool TryParseCidr(string raw, out IPNetwork network, out string? error)
    {
        network = default;
        error = null;
        var slash = raw.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? raw : raw[..slash];
        if (addressText.Contains('%', StringComparison.Ordinal))
        {
            error = $"invalid CIDR '{raw}': zone ids are not allowed";
            return false;
        }

        if (raw.Contains("://", StringComparison.Ordinal))
        {
            error = $"invalid CIDR '{raw}': expected an IP address or a CIDR such as 10.0.0.0/8 or fd00::/8, not a URL";
            return false;
        }

        if (!IsStrictAddress(addressText, out var address))
        {
            var colon = addressText.StartsWith('[') ? addressText.IndexOf("]:", StringComparison.Ordinal) + 1 : addressText.Count(c => c == ':') == 1 ? addressText.IndexOf(':', StringComparison.Ordinal) : 0;
            if (colon > 0 && IsStrictAddress(addressText[..colon].Trim('[', ']'), out _))
            {
                error = $"invalid CIDR '{raw}': an address here has no port (it admits every port); write '{addressText[..colon].Trim('[', ']')}'";
                return false;
            }

            error = $"invalid CIDR '{raw}': '{addressText}' is not an IP address (expected an IP address or a CIDR such as 10.0.0.0/8 or fd00::/8; host names are not allowed here)";
            return false;
        }

        var maxPrefix = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        var prefix = maxPrefix;
        if (slash >= 0)
        {
            var prefixText = raw[(slash + 1)..];
            if (prefixText.Length == 0 || prefixText.Length > 3 || !prefixText.All(char.IsAsciiDigit)
                || !int.TryParse(prefixText, System.Globalization.CultureInfo.InvariantCulture, out prefix) || prefix > maxPrefix)
            {
                error = $"invalid CIDR '{raw}': prefix length must be 0..{maxPrefix}";
                return false;
            }
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var length);
        bytes = bytes[..length];
        Span<byte> masked = stackalloc byte[length];
        bytes.CopyTo(masked);
        for (var bit = prefix; bit < masked.Length * 8; bit++)
        {
            masked[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        if (!bytes.SequenceEqual(masked))
        {
            error = $"invalid CIDR '{raw}': host bits are set (did you mean '{new IPAddress(masked)}/{prefix}'?)";
            return false;
        }

        network = new IPNetwork(address, prefix);
        return true;
    }

    /// <summary>Only canonical dotted-quad IPv4 (four decimal parts) and IPv6 are accepted in policy addresses.</summary>
    private static bool IsStrictAddress(string text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.Contains(':', StringComparison.Ordinal))
        {
            if (!IPAddress.TryParse(text, out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                return false;
            }

            address = v6;
            return true;
        }

        // Four dot-separated decimal parts of 1-3 digits, no leading zero, each at most 255 (no Split: this runs for
        // every address in a policy).
        Span<byte> octets = stackalloc byte[4];
        var rest = text.AsSpan();
        for (var i = 0; i < 4; i++)
        {
            var dot = rest.IndexOf('.');
            if ((dot >= 0) != (i < 3))
            {
                return false;
            }

            var part = dot >= 0 ? rest[..dot] : rest;
            if (part.Length is 0 or > 3 || part.ContainsAnyExceptInRange('0', '9') || (part.Length > 1 && part[0] == '0'))
            {
                return false;
            }

            var value = 0;
            foreach (var digit in part)
            {
                value = (value * 10) + (digit - '0');
            }

            if (value > 255)
            {
                return false;
            }

            octets[i] = (byte)value;
            rest = dot >= 0 ? rest[(dot + 1)..] : [];
        }

        address = new IPAddress(octets);
        return true;
    }

    public static HostMatcher Build(IEnumerable<Parsed> patterns)
    {
        var any = false;
        var exact = new List<string>();
        var suffixes = new List<string>();
        var networks = new List<IPNetwork>();
        foreach (var p in patterns)
        {
            switch (p.Kind)
            {
                case Kind.Any:
                    any = true;
                    break;
                case Kind.Exact:
                    if (HostNormalizer.TryGetAddress(p.Value, out var address))
                    {
                        networks.Add(new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
                    }
                    else
                    {
                        exact.Add(p.Value);
                    }

                    break;
                case Kind.Wildcard:
                    suffixes.Add(p.Value);
                    break;
                case Kind.Network:
                    networks.Add(p.Network);
                    break;
            }
        }

        return any ? HostMatcher.Any : new HostMatcher(false, exact, suffixes, networks);
    }
}
