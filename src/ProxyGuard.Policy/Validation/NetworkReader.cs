using System.Net;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>network</c>.</summary>
internal static class NetworkReader
{
    public static NetworkSpec Read(SectionContext c, YNode? node)
    {
        var networks = new List<IPNetwork>();
        var map = c.R.Mapping(node, "network", PolicyKeys.Network);
        if (map?.Get("allow_destinations") is { } allowNode)
        {
            CommonReaders.ReadNetworks(c.R, c.R.StringList(allowNode, "network.allow_destinations", allowEmpty: true), "network.allow_destinations", networks);
        }

        return new NetworkSpec { AllowDestinations = networks };
    }
}
