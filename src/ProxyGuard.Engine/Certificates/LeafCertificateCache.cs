using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ProxyGuard.Engine.Certificates;

/// <summary>
/// Mints leaf certificates (ECDSA P-256, signed by the CA) per host name and keeps them in a bounded
/// LRU cache. Concurrent requests for the same host share one minting; minting for one host never
/// blocks connections for other hosts.
/// </summary>
public sealed class LeafCertificateCache : IDisposable
{
    private readonly CertificateAuthority _ca;
    private readonly int _capacity;
    private readonly ECDsa _leafKey;
    private readonly Dictionary<string, LinkedListNode<Entry>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _lru = new();
    private readonly Lock _lock = new();
    private long _minted;
    private long _hits;

    public LeafCertificateCache(CertificateAuthority ca, int capacity = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ca = ca;
        _capacity = capacity;
        _leafKey = ca.LeafKey;
    }

    public long Minted => Interlocked.Read(ref _minted);

    public long Hits => Interlocked.Read(ref _hits);

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _map.Count;
            }
        }
    }

    /// <summary>Returns the certificate context for a normalised host name or IP literal.</summary>
    public SslStreamCertificateContext Get(string host)
    {
        Lazy<SslStreamCertificateContext> lazy;
        lock (_lock)
        {
            if (_map.TryGetValue(host, out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                Interlocked.Increment(ref _hits);
                lazy = node.Value.Context;
            }
            else
            {
                lazy = new Lazy<SslStreamCertificateContext>(() => Mint(host), LazyThreadSafetyMode.ExecutionAndPublication);
                var entry = new Entry(host, lazy);
                _map[host] = _lru.AddFirst(entry);
                while (_map.Count > _capacity)
                {
                    var last = _lru.Last!;
                    _lru.RemoveLast();
                    _map.Remove(last.Value.Host);
                }
            }
        }

        try
        {
            return lazy.Value;
        }
        catch
        {
            lock (_lock)
            {
                if (_map.TryGetValue(host, out var node) && ReferenceEquals(node.Value.Context, lazy))
                {
                    _lru.Remove(node);
                    _map.Remove(host);
                }
            }

            throw;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _map.Clear();
            _lru.Clear();
        }
    }

    private SslStreamCertificateContext Mint(string host)
    {
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + EscapeCn(host)), _leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        if (IPAddress.TryParse(host, out var ip))
        {
            san.AddIpAddress(ip);
        }
        else
        {
            san.AddDnsName(host);
        }

        request.CertificateExtensions.Add(san.Build(critical: false));
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca.Certificate, true, false));

        var now = DateTimeOffset.UtcNow;
        var notAfter = now.AddDays(30);
        if (notAfter > _ca.Certificate.NotAfter)
        {
            notAfter = _ca.Certificate.NotAfter;
        }

        Span<byte> serial = stackalloc byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        var generator = X509SignatureGenerator.CreateForECDsa(_ca.Key);
        using var unsigned = request.Create(_ca.Certificate.SubjectName, generator, now.AddDays(-1), notAfter, serial);
        var leaf = unsigned.CopyWithPrivateKey(_leafKey);
        Interlocked.Increment(ref _minted);
        return SslStreamCertificateContext.Create(leaf, new X509Certificate2Collection(_ca.Certificate), offline: true);
    }

    private static string EscapeCn(string host) => host.Replace(",", string.Empty, StringComparison.Ordinal)
        .Replace("=", string.Empty, StringComparison.Ordinal).Replace("+", string.Empty, StringComparison.Ordinal);

    private sealed record Entry(string Host, Lazy<SslStreamCertificateContext> Context);
}
