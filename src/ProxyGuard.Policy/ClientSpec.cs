using System.Net;

namespace ProxyGuard.Policy;

/// <summary>A client (<c>clients[]</c>): authenticates with Proxy-Authorization Basic <c>id:token</c>.</summary>
public sealed class ClientSpec
{
    public required string Id { get; init; }

    /// <summary>The secret reference of the token (<c>env:</c>, <c>file:</c> or <c>vault:</c>), never the token itself.</summary>
    public required string TokenReference { get; init; }

    /// <summary>Source networks the client may connect from; empty = any source.</summary>
    public required IReadOnlyList<IPNetwork> Networks { get; init; }

    public int Line { get; init; }

    /// <summary>True when <paramref name="source"/> is inside <see cref="Networks"/> (or no networks are set).</summary>
    public bool AllowsSource(IPAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (Networks.Count == 0)
        {
            return true;
        }

        var address = source.IsIPv4MappedToIPv6 ? source.MapToIPv4() : source;
        foreach (var network in Networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }
}
