using System.Net;
using System.Net.Sockets;

namespace ProxyGuard.Engine.Network;

/// <summary>
/// The only way ProxyGuard opens upstream sockets: resolve once, check every address against the
/// destination guard and the proxy's own listeners, and dial exactly an address that was checked.
/// </summary>
internal sealed class UpstreamConnector
{
    private readonly IReadOnlyDictionary<string, IPAddress> _pinned;
    private readonly Func<IReadOnlyList<IPNetwork>> _allowDestinations;
    private readonly TimeSpan _connectTimeout;
    private IReadOnlyList<IPEndPoint> _self = [];

    public UpstreamConnector(
        IReadOnlyDictionary<string, IPAddress> pinned,
        Func<IReadOnlyList<IPNetwork>> allowDestinations,
        TimeSpan connectTimeout)
    {
        _pinned = pinned;
        _allowDestinations = allowDestinations;
        _connectTimeout = connectTimeout;
    }

    /// <summary>The proxy's own listening endpoints; never dialled.</summary>
    public void SetSelfEndpoints(IReadOnlyList<IPEndPoint> endpoints) => _self = endpoints;

    public async Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct)
    {
        if (_pinned.TryGetValue(host, out var pinned))
        {
            return [pinned];
        }

        if (IPAddress.TryParse(host, out var literal))
        {
            return [literal];
        }

        try
        {
            return await Dns.GetHostAddressesAsync(host, ct);
        }
        catch (SocketException ex)
        {
            throw new DestinationBlockedException("dns-failure", $"cannot resolve {host}: {ex.SocketErrorCode}");
        }
    }

    /// <summary>
    /// Judges a destination without a DNS lookup: IP literals and pinned names (<c>--resolve</c>)
    /// are checked exactly as <see cref="ConnectAsync"/> would check them, so a CONNECT to a blocked
    /// address is refused before any TLS (and before a certificate is minted). Returns the refusal
    /// reason (<c>self</c> or <c>private-destination</c>), or null when the destination is allowed
    /// or needs a lookup (the dial path checks it again either way).
    /// </summary>
    public string? CheckWithoutLookup(string host, int port)
    {
        IPAddress address;
        if (_pinned.TryGetValue(host, out var pinned))
        {
            address = pinned;
        }
        else if (!IPAddress.TryParse(host, out address!))
        {
            return null;
        }

        if (IsSelf(address, port))
        {
            return "self";
        }

        return DestinationGuard.IsAllowed(address, _allowDestinations(), out _) ? null : "private-destination";
    }

    /// <summary>Resolves <paramref name="host"/>, checks every address, and returns a connected socket.</summary>
    public async Task<Socket> ConnectAsync(string host, int port, CancellationToken ct)
    {
        var addresses = await ResolveAsync(host, ct);
        var allowed = new List<IPAddress>(addresses.Length);
        string? refusal = null;
        var allow = _allowDestinations();
        foreach (var address in addresses)
        {
            if (IsSelf(address, port))
            {
                refusal = "self";
                continue;
            }

            if (!DestinationGuard.IsAllowed(address, allow, out var category))
            {
                refusal ??= category;
                continue;
            }

            allowed.Add(address);
        }

        if (allowed.Count == 0)
        {
            if (refusal == "self")
            {
                throw new DestinationBlockedException("self", $"{host}:{port} is ProxyGuard itself");
            }

            throw new DestinationBlockedException(
                "private-destination",
                $"{host} resolves only to blocked addresses ({refusal ?? "none"}); allow them with network.allow_destinations");
        }

        Exception? last = null;
        foreach (var address in allowed)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_connectTimeout);
                await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
                return socket;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                last = ex;
                ct.ThrowIfCancellationRequested();
            }
        }

        throw last is OperationCanceledException
            ? new TimeoutException($"connecting to {host}:{port} timed out")
            : last!;
    }

    /// <summary>
    /// True when dialling <paramref name="address"/>:<paramref name="port"/> could reach one of the
    /// proxy's own listeners. Decided on the resolved address: a port one of the listeners uses,
    /// combined with any address of this host (the unspecified address 0.0.0.0/8 and ::, the
    /// loopback range, every interface address, read at dial time), or with any address at all when
    /// that listener is bound to the unspecified address (a hairpin NAT can lead back to it).
    /// </summary>
    private bool IsSelf(IPAddress address, int port)
    {
        var self = _self;
        var portMatches = false;
        foreach (var endpoint in self)
        {
            if (endpoint.Port != port)
            {
                continue;
            }

            portMatches = true;
            if (endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any))
            {
                return true;
            }
        }

        return portMatches && LocalAddresses.IsLocal(address);
    }
}
