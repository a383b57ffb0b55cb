using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace ProxyGuard.Engine.Network;

/// <summary>
/// Whether an address belongs to this host: the unspecified addresses (0.0.0.0/8 and ::, which the
/// kernel routes to the host itself), the loopback ranges (127.0.0.0/8, ::1), and every address of
/// every network interface (read each time: interfaces come and go). IPv4-mapped and other IPv6
/// forms that carry an IPv4 address are judged by the address they carry; IPv6 scope ids are ignored.
/// </summary>
internal static class LocalAddresses
{
    private static readonly IPNetwork ThisNetwork = IPNetwork.Parse("0.0.0.0/8");

    public static bool IsLocal(IPAddress address) => IsLocal(address, InterfaceAddresses);

    public static bool IsLocal(IPAddress address, Func<IEnumerable<IPAddress>> interfaceAddresses)
    {
        var candidates = new[] { Unscoped(address), Unscoped(DestinationGuard.Effective(address)) };
        foreach (var candidate in candidates)
        {
            if (IPAddress.IsLoopback(candidate) || candidate.Equals(IPAddress.IPv6Any)
                || (candidate.AddressFamily == AddressFamily.InterNetwork && ThisNetwork.Contains(candidate)))
            {
                return true;
            }
        }

        IEnumerable<IPAddress> local;
        try
        {
            local = interfaceAddresses();
        }
        catch (NetworkInformationException)
        {
            return true; // cannot tell: fail closed for the proxy's own ports
        }

        foreach (var own in local)
        {
            var ownUnscoped = Unscoped(own.IsIPv4MappedToIPv6 ? own.MapToIPv4() : own);
            foreach (var candidate in candidates)
            {
                if (ownUnscoped.Equals(candidate))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static IEnumerable<IPAddress> InterfaceAddresses()
    {
        var all = new List<IPAddress>();
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                all.Add(unicast.Address);
            }
        }

        return all;
    }

    private static IPAddress Unscoped(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            Span<byte> bytes = stackalloc byte[16];
            address.TryWriteBytes(bytes, out _);
            return new IPAddress(bytes);
        }

        return address;
    }
}
