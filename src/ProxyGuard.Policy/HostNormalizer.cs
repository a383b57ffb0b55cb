using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ProxyGuard.Policy;

/// <summary>
/// Normalises host names and IP literals so that every spelling of a destination compares equal:
/// lower case, one trailing dot removed, IDN to punycode, IPv4 in every inet_aton spelling to a dotted quad,
/// IPv6 canonical (RFC 5952, without brackets; IPv4-mapped IPv6 becomes the IPv4 address), zone ids rejected.
/// </summary>
public static class HostNormalizer
{
    private const int MaxNameLength = 253;
    private const int MaxLabelLength = 63;

    private static readonly IdnMapping s_idn = new() { AllowUnassigned = false, UseStd3AsciiRules = false };

    public static bool TryNormalize(string host, out string normalized, out string? error)
    {
        if (host is { Length: > 0 } && IsCanonicalName(host))
        {
            normalized = host; // already what the full path would produce: no copy (the common case, per request)
            error = null;
            return true;
        }

        return TryNormalizeFull(host, out normalized, out error);
    }

    /// <summary><see cref="TryNormalize"/> without the shortcut for names already in normal form (tests compare the two).</summary>
    internal static bool TryNormalizeFull(string host, out string normalized, out string? error)
    {
        normalized = string.Empty;
        error = null;
        if (string.IsNullOrEmpty(host))
        {
            error = "host is empty";
            return false;
        }

        if (host.Length > 1024)
        {
            error = "host is too long";
            return false;
        }

        if (host.Contains('%', StringComparison.Ordinal))
        {
            error = host.Contains(':', StringComparison.Ordinal)
                ? "IPv6 zone ids are not allowed"
                : "percent-encoded host names are not allowed";
            return false;
        }

        if (host[0] == '[')
        {
            if (host[^1] != ']' || host.Length < 3)
            {
                error = "unterminated IPv6 literal";
                return false;
            }

            return TryNormalizeIPv6(host[1..^1], out normalized, out error);
        }

        if (host.Contains(':', StringComparison.Ordinal))
        {
            return TryNormalizeIPv6(host, out normalized, out error);
        }

        var name = host;
        foreach (var c in name)
        {
            if (c > 0x7E)
            {
                try
                {
                    name = s_idn.GetAscii(name);
                }
                catch (ArgumentException)
                {
                    error = "invalid internationalised host name";
                    return false;
                }

                break;
            }

            if (c < 0x21 || c == 0x7F)
            {
                error = "host contains a control character or space";
                return false;
            }
        }

        name = name.ToLowerInvariant();
        if (name.EndsWith('.'))
        {
            name = name[..^1];
        }

        if (name.Length == 0)
        {
            error = "host is empty";
            return false;
        }

        var labels = name.Split('.');
        if (LooksNumeric(labels[^1]))
        {
            if (TryParseInetAton(labels, out var v4))
            {
                normalized = v4.ToString();
                return true;
            }

            error = "invalid IPv4 address";
            return false;
        }

        if (name.Length > MaxNameLength)
        {
            error = $"host name is longer than {MaxNameLength} characters";
            return false;
        }

        foreach (var label in labels)
        {
            if (label.Length == 0)
            {
                error = "host name has an empty label";
                return false;
            }

            if (label.Length > MaxLabelLength)
            {
                error = $"host name label is longer than {MaxLabelLength} characters";
                return false;
            }

            foreach (var c in label)
            {
                if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_'))
                {
                    error = $"host name contains an invalid character '{c}'";
                    return false;
                }
            }

            if (label.StartsWith("xn--", StringComparison.Ordinal))
            {
                try
                {
                    _ = s_idn.GetUnicode(label);
                }
                catch (ArgumentException)
                {
                    error = "invalid punycode label";
                    return false;
                }
            }
        }

        normalized = name;
        return true;
    }

    /// <summary>Normalises <paramref name="host"/> or returns <c>null</c>.</summary>
    public static string? NormalizeOrNull(string host) => TryNormalize(host, out var normalized, out _) ? normalized : null;

    /// <summary>True when <paramref name="normalizedHost"/> is an IP literal; <paramref name="address"/> receives it.</summary>
    public static bool TryGetAddress(string normalizedHost, out IPAddress address)
    {
        if (normalizedHost.Length > 0 && (char.IsAsciiDigit(normalizedHost[^1]) || normalizedHost.Contains(':', StringComparison.Ordinal))
            && IPAddress.TryParse(normalizedHost, out var parsed))
        {
            address = parsed;
            return true;
        }

        address = IPAddress.None;
        return false;
    }

    private static bool TryNormalizeIPv6(string text, out string normalized, out string? error)
    {
        normalized = string.Empty;
        error = null;
        foreach (var c in text)
        {
            if (!(char.IsAsciiHexDigit(c) || c is ':' or '.'))
            {
                error = "invalid IPv6 address";
                return false;
            }
        }

        if (!IPAddress.TryParse(text, out var address) || address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            error = "invalid IPv6 address";
            return false;
        }

        normalized = address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : address.ToString();
        return true;
    }

    /// <summary>
    /// True when <paramref name="host"/> is a DNS name already in normalised form: lower-case LDH (and '_') labels of
    /// 1-63 characters, no trailing dot, no punycode label, within the length limit, and a last label that is not
    /// numeric (so it is not an IPv4 form). Anything else takes the full path.
    /// </summary>
    private static bool IsCanonicalName(string host)
    {
        if (host.Length > MaxNameLength)
        {
            return false;
        }

        var labelStart = 0;
        for (var i = 0; i <= host.Length; i++)
        {
            if (i < host.Length && host[i] != '.')
            {
                if (host[i] is not (>= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_'))
                {
                    return false;
                }

                continue;
            }

            var length = i - labelStart;
            if (length is 0 or > MaxLabelLength || host.AsSpan(labelStart, length).StartsWith("xn--", StringComparison.Ordinal))
            {
                return false;
            }

            if (i == host.Length && LooksNumeric(host.AsSpan(labelStart)))
            {
                return false;
            }

            labelStart = i + 1;
        }

        return true;
    }

    private static bool LooksNumeric(ReadOnlySpan<char> label)
    {
        if (label.Length == 0)
        {
            return false;
        }

        if (label.StartsWith("0x", StringComparison.Ordinal))
        {
            for (var i = 2; i < label.Length; i++)
            {
                if (!char.IsAsciiHexDigit(label[i]))
                {
                    return false;
                }
            }

            return true;
        }

        foreach (var c in label)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>inet_aton: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes.</summary>
    private static bool TryParseInetAton(string[] parts, out IPAddress address)
    {
        address = IPAddress.None;
        if (parts.Length is < 1 or > 4)
        {
            return false;
        }

        var values = new ulong[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!TryParsePart(parts[i], out values[i]))
            {
                return false;
            }
        }

        ulong result = 0;
        for (var i = 0; i < parts.Length - 1; i++)
        {
            if (values[i] > 0xFF)
            {
                return false;
            }

            result |= values[i] << (8 * (3 - i));
        }

        var lastBits = 8 * (4 - (parts.Length - 1));
        var last = values[^1];
        if (last >= (1UL << lastBits))
        {
            return false;
        }

        result |= last;
        var bytes = new[] { (byte)(result >> 24), (byte)(result >> 16), (byte)(result >> 8), (byte)result };
        address = new IPAddress(bytes);
        return true;
    }

    private static bool TryParsePart(string part, out ulong value)
    {
        value = 0;
        if (part.Length == 0 || part.Length > 34)
        {
            return false;
        }

        if (part.StartsWith("0x", StringComparison.Ordinal))
        {
            if (part.Length == 2)
            {
                value = 0;
                return true;
            }

            return ulong.TryParse(part.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && value <= uint.MaxValue;
        }

        if (part.Length > 1 && part[0] == '0')
        {
            ulong octal = 0;
            for (var i = 1; i < part.Length; i++)
            {
                var c = part[i];
                if (c is < '0' or > '7')
                {
                    return false;
                }

                octal = (octal * 8) + (ulong)(c - '0');
                if (octal > uint.MaxValue)
                {
                    return false;
                }
            }

            value = octal;
            return true;
        }

        return ulong.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value <= uint.MaxValue;
    }
}
