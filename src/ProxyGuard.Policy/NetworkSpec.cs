using System.Net;

namespace ProxyGuard.Policy;

/// <summary>The <c>network</c> section.</summary>
public sealed class NetworkSpec
{
    /// <summary>CIDRs exempt from the private/special-address block.</summary>
    public required IReadOnlyList<IPNetwork> AllowDestinations { get; init; }

    /// <summary>True when <paramref name="address"/> (IPv4-mapped IPv6 is treated as IPv4) is inside <see cref="AllowDestinations"/>.</summary>
    public bool IsAllowedDestination(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var candidate = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        foreach (var network in AllowDestinations)
        {
            if (network.Contains(candidate))
            {
                return true;
            }
        }

        return false;
    }
}
