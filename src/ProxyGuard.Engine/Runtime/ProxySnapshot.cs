using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ProxyGuard.Inspection;
using ProxyGuard.Policy;
using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Everything one request needs to be decided, compiled from one policy file: immutable, swapped
/// atomically on reload so that a request sees one policy from start to end.
/// </summary>
internal sealed class ProxySnapshot
{
    public ProxySnapshot(
        CompiledPolicy policy,
        IReadOnlyList<ClientCredential> clients,
        ContentScanner? scanner,
        Substitutor substitutor,
        IReadOnlyList<SecretBinding> bindings,
        IReadOnlyList<UnavailableSecret> unavailable,
        X509Certificate2Collection upstreamRoots)
    {
        Policy = policy;
        Clients = clients;
        Scanner = scanner;
        Substitutor = substitutor;
        Bindings = bindings;
        Unavailable = unavailable;
        UpstreamRoots = upstreamRoots;
    }

    public CompiledPolicy Policy { get; }

    public IReadOnlyList<ClientCredential> Clients { get; }

    public bool RequiresAuthentication => Policy.Clients.Count > 0;

    /// <summary>Null when content scanning is off (no detectors, no rules, no known secrets).</summary>
    public ContentScanner? Scanner { get; }

    public Substitutor Substitutor { get; }

    public IReadOnlyList<SecretBinding> Bindings { get; }

    public IReadOnlyList<UnavailableSecret> Unavailable { get; }

    public X509Certificate2Collection UpstreamRoots { get; }

    /// <summary>Host names remembered per snapshot (bounded), so that a host is scanned once, not on every request.</summary>
    private const int HostScanCacheSize = 4096;

    private readonly ConcurrentDictionary<string, ScanResult> _hostScans = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ScanResult> _hostScansUnexempted = new(StringComparer.Ordinal);

    /// <summary>
    /// The content scan of a host name (its DNS labels; the host's own exemptions apply), or null when scanning is off.
    /// Complete results are remembered for this snapshot (a reload starts afresh); the memory is bounded.
    /// </summary>
    public ScanResult? ScanHost(string host) => Scanner is null ? null : Remember(_hostScans, host, host);

    /// <summary>As <see cref="ScanHost"/>, with no exemption applied (whether an event must hide the host).</summary>
    public ScanResult? ScanHostUnexempted(string host) => Scanner is null ? null : Remember(_hostScansUnexempted, host, string.Empty);

    private ScanResult Remember(ConcurrentDictionary<string, ScanResult> cache, string host, string exemptionHost)
    {
        if (cache.TryGetValue(host, out var known))
        {
            return known;
        }

        var result = Scanner!.ScanText(host, ScanLocation.Host, exemptionHost);
        if (result.ErrorKind == ScanErrorKind.None)
        {
            if (cache.Count >= HostScanCacheSize)
            {
                cache.Clear();
            }

            cache.TryAdd(host, result);
        }

        return result;
    }

    /// <summary>
    /// Identifies the client from a <c>Proxy-Authorization: Basic</c> value. Returns false when the
    /// policy has clients and none matches (the caller answers 407), and, without looking at the
    /// credentials, while the source address is throttled after repeated failures (<see cref="AuthThrottle"/>).
    /// </summary>
    public bool TryIdentify(string? proxyAuthorization, IPAddress? remote, out string? clientId) =>
        TryIdentify(proxyAuthorization, remote, out clientId, out _);

    /// <summary>As above; <paramref name="throttled"/> tells a throttled refusal (answer 429 <c>auth-throttled</c>) from a wrong credential.</summary>
    public bool TryIdentify(string? proxyAuthorization, IPAddress? remote, out string? clientId, out bool throttled)
    {
        clientId = null;
        throttled = false;
        if (!RequiresAuthentication)
        {
            return true;
        }

        if (AuthThrottle.Shared.IsBlocked(remote))
        {
            throttled = true;
            return false;
        }

        if (string.IsNullOrEmpty(proxyAuthorization))
        {
            return false; // no credentials yet (the 407 challenge): not a failed attempt
        }

        if (Verify(proxyAuthorization, remote, out clientId))
        {
            return true;
        }

        AuthThrottle.Shared.RecordFailure(remote);
        return false;
    }

    private bool Verify(string proxyAuthorization, IPAddress? remote, out string? clientId)
    {
        clientId = null;
        if (proxyAuthorization is null || !proxyAuthorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(proxyAuthorization[6..].Trim()));
        }
        catch (FormatException)
        {
            return false;
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return false;
        }

        var id = decoded[..colon];
        var token = Encoding.UTF8.GetBytes(decoded[(colon + 1)..]);
        foreach (var client in Clients)
        {
            if (!string.Equals(client.Id, id, StringComparison.Ordinal) || client.Token is null)
            {
                continue;
            }

            bool tokenOk;
            try
            {
                tokenOk = client.Token.FixedTimeEquals(token);
            }
            catch (SecretUnavailableException)
            {
                return false; // a Vault token expired beyond its grace: fail closed (407)
            }
            finally
            {
                CryptographicOperations.ZeroMemory(token);
            }

            if (!tokenOk)
            {
                return false;
            }

            if (client.Networks.Count > 0 && (remote is null || !client.Networks.Any(n => n.Contains(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote))))
            {
                return false;
            }

            clientId = client.Id;
            return true;
        }

        return false;
    }

    /// <summary>The unavailable secret whose placeholder occurs in <paramref name="text"/>, if any.</summary>
    public UnavailableSecret? FindUnavailablePlaceholder(string text)
    {
        foreach (var secret in Unavailable)
        {
            if (text.Contains(secret.Placeholder, StringComparison.Ordinal))
            {
                return secret;
            }
        }

        return null;
    }
}
