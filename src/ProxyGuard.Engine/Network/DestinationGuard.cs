using System.Net;
using System.Net.Sockets;

namespace ProxyGuard.Engine.Network;

/// <summary>
/// Classifies destination addresses. Anything that is not a globally routable unicast address
/// (loopback, private, link-local, CGNAT, multicast, unspecified, documentation, benchmarking,
/// reserved, cloud metadata) is blocked unless the policy lists it in
/// <c>network.allow_destinations</c>. IPv6 forms that embed an IPv4 address (IPv4-mapped,
/// IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the embedded address.
/// </summary>
internal static class DestinationGuard
{
    private static readonly (IPNetwork Network, string Category)[] BlockedV4 =
    [
        (IPNetwork.Parse("0.0.0.0/8"), "unspecified"),
        (IPNetwork.Parse("10.0.0.0/8"), "private"),
        (IPNetwork.Parse("100.64.0.0/10"), "cgnat"),
        (IPNetwork.Parse("127.0.0.0/8"), "loopback"),
        (IPNetwork.Parse("169.254.0.0/16"), "link-local"),
        (IPNetwork.Parse("172.16.0.0/12"), "private"),
        (IPNetwork.Parse("192.0.0.0/24"), "reserved"),
        (IPNetwork.Parse("192.0.2.0/24"), "documentation"),
        (IPNetwork.Parse("192.88.99.0/24"), "reserved"),
        (IPNetwork.Parse("192.168.0.0/16"), "private"),
        (IPNetwork.Parse("198.18.0.0/15"), "benchmarking"),
        (IPNetwork.Parse("198.51.100.0/24"), "documentation"),
        (IPNetwork.Parse("203.0.113.0/24"), "documentation"),
        (IPNetwork.Parse("224.0.0.0/4"), "multicast"),
        (IPNetwork.Parse("240.0.0.0/4"), "reserved"),
    ];

    private static readonly (IPNetwork Network, string Category)[] BlockedV6 =
    [
        (IPNetwork.Parse("::/128"), "unspecified"),
        (IPNetwork.Parse("::1/128"), "loopback"),
        (IPNetwork.Parse("fd00:ec2::254/128"), "metadata"),
        (IPNetwork.Parse("fc00::/7"), "private"),
        (IPNetwork.Parse("fe80::/10"), "link-local"),
        (IPNetwork.Parse("fec0::/10"), "link-local"),
        (IPNetwork.Parse("ff00::/8"), "multicast"),
        (IPNetwork.Parse("2001:db8::/32"), "documentation"),
        (IPNetwork.Parse("3fff::/20"), "documentation"),
        (IPNetwork.Parse("2001::/23"), "reserved"),
        (IPNetwork.Parse("100::/64"), "reserved"),
        (IPNetwork.Parse("64:ff9b:1::/48"), "reserved"),
    ];

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");
    private static readonly IPAddress Metadata = IPAddress.Parse("169.254.169.254");

    /// <summary>Returns the address an IPv6 address carries (mapped, compatible, NAT64, 6to4), or itself.</summary>
    public static IPAddress Effective(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out _);
        if (Nat64.Contains(address))
        {
            return new IPAddress(b[12..16]);
        }

        if (SixToFour.Contains(address))
        {
            return new IPAddress(b[2..6]);
        }

        // IPv4-compatible (deprecated ::a.b.c.d): first 96 bits zero, and not :: or ::1.
        if (b[..12].IndexOfAnyExcept((byte)0) < 0 && !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1))
        {
            return new IPAddress(b[12..16]);
        }

        return address;
    }

    /// <summary>The category that blocks <paramref name="address"/>, or null when it is publicly routable.</summary>
    public static string? BlockedCategory(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            return "scoped";
        }

        var effective = Effective(address);
        if (effective.AddressFamily == AddressFamily.InterNetwork)
        {
            if (effective.Equals(Metadata))
            {
                return "metadata";
            }

            foreach (var (network, category) in BlockedV4)
            {
                if (network.Contains(effective))
                {
                    return category;
                }
            }

            return null;
        }

        foreach (var (network, category) in BlockedV6)
        {
            if (network.Contains(effective))
            {
                return category;
            }
        }

        return null;
    }

    /// <summary>True when <paramref name="address"/> may be dialled: public, or inside an allowed network.</summary>
    public static bool IsAllowed(IPAddress address, IReadOnlyList<IPNetwork> allowDestinations, out string? category)
    {
        category = BlockedCategory(address);
        if (category is null)
        {
            return true;
        }

        var effective = Effective(address);
        foreach (var network in allowDestinations)
        {
            if (network.Contains(effective) || network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }
}
