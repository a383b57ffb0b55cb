using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Certificates;

/// <summary>
/// Mints leaf certificates (ECDSA P-256, signed by the CA) per host name and keeps them in a bounded
/// LRU cache. Concurrent requests for the same host share one minting; minting for one host never
/// blocks connections for other hosts. A cached leaf is re-minted, on the first handshake that finds
/// it, once less than a third of its lifetime remains (about 10 days for the 30-day leaves), so a
/// busy host never gets an expired certificate. With a logger it also reports the CA's own expiry at
/// start and once a day (<see cref="CaExpiry"/>).
/// <para>
/// An evicted (or replaced) leaf keeps native TLS state (the OpenSSL context .NET caches per certificate context, and
/// the certificates) until a full garbage collection finalises it. The collector sees only the small managed part, so
/// with a full cache and a stream of new names, evicted leaves piled up by the tens of thousands (measured: RSS grew by
/// about 11 KiB per evicted leaf past 100,000 names). After every <see cref="CollectAfterEvictions"/> evictions the
/// cache therefore requests one background full collection, which bounds that memory to roughly that many leaves.
/// </para>
/// </summary>
internal sealed class LeafCertificateCache : IDisposable
{
    /// <summary>Leaf lifetime (capped at the CA's NotAfter); leaves are backdated one day.</summary>
    public static readonly TimeSpan LeafLifetime = TimeSpan.FromDays(30);

    /// <summary>Evicted or replaced leaves after which a background full collection is requested.</summary>
    public const int CollectAfterEvictions = 1024;

    private readonly CertificateAuthority _ca;
    private readonly TimeProvider _time;
    private readonly ILogger? _logger;
    private readonly ITimer? _caCheck;
    private readonly int _capacity;
    private readonly ECDsa _leafKey;
    private readonly Dictionary<string, LinkedListNode<Entry>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _lru = new();
    private readonly Lock _lock = new();
    private readonly int _collectAfter;
    private readonly Action _collect;
    private long _minted;
    private long _hits;
    private long _renewed;
    private long _collections;
    private int _evictedSinceCollect;

    public LeafCertificateCache(CertificateAuthority ca, int capacity = 10_000, ILogger? logger = null, TimeProvider? time = null)
        : this(ca, capacity, logger, time, CollectAfterEvictions, null)
    {
    }

    /// <summary>With the eviction count that triggers a collection and the collection itself (tests).</summary>
    internal LeafCertificateCache(CertificateAuthority ca, int capacity, ILogger? logger, TimeProvider? time, int collectAfter, Action? collect)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(collectAfter, 1);
        _collectAfter = collectAfter;
        _collect = collect ?? RequestBackgroundCollection;
        _ca = ca;
        _capacity = capacity;
        _leafKey = ca.LeafKey;
        _time = time ?? TimeProvider.System;
        _logger = logger;
        if (logger is not null)
        {
            _caCheck = _time.CreateTimer(_ => LogCaExpiry(), null, TimeSpan.Zero, TimeSpan.FromDays(1));
        }
    }

    /// <summary>The interception CA's expiry as of now.</summary>
    public CaExpiry CaStatus => CaExpiry.Of(_ca.Certificate, _time.GetUtcNow());

    public long Renewed => Interlocked.Read(ref _renewed);

    public long Minted => Interlocked.Read(ref _minted);

    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Full collections requested because of evicted leaves.</summary>
    public long Collections => Interlocked.Read(ref _collections);

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

    /// <summary>True when a leaf for <paramref name="host"/> is in the cache (minted or being minted).</summary>
    public bool Contains(string host)
    {
        lock (_lock)
        {
            return _map.ContainsKey(host);
        }
    }

    /// <summary>Returns the certificate context for a normalised host name or IP literal.</summary>
    public SslStreamCertificateContext Get(string host)
    {
        Lazy<Leaf> lazy;
        var collect = false;
        lock (_lock)
        {
            if (_map.TryGetValue(host, out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                if (node.Value.Context is { IsValueCreated: true } current && NeedsRenewal(current.Value))
                {
                    // Replace the entry: handshakes already holding the old context finish with it.
                    node.Value = new Entry(host, new Lazy<Leaf>(() => Mint(host), LazyThreadSafetyMode.ExecutionAndPublication));
                    Interlocked.Increment(ref _renewed);
                    collect = Evicted();
                }
                else
                {
                    Interlocked.Increment(ref _hits);
                }

                lazy = node.Value.Context;
            }
            else
            {
                lazy = new Lazy<Leaf>(() => Mint(host), LazyThreadSafetyMode.ExecutionAndPublication);
                var entry = new Entry(host, lazy);
                _map[host] = _lru.AddFirst(entry);
                while (_map.Count > _capacity)
                {
                    var last = _lru.Last!;
                    _lru.RemoveLast();
                    _map.Remove(last.Value.Host);
                    collect |= Evicted();
                }
            }
        }

        if (collect)
        {
            Interlocked.Increment(ref _collections);
            _collect();
        }

        try
        {
            return lazy.Value.Context;
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
        _caCheck?.Dispose();
        lock (_lock)
        {
            _map.Clear();
            _lru.Clear();
        }
    }

    /// <summary>
    /// True once less than a third of the leaf's lifetime remains (or the clock is before its start),
    /// unless a new leaf could not live longer (it is already capped at the CA's NotAfter).
    /// </summary>
    private bool NeedsRenewal(Leaf leaf)
    {
        var now = _time.GetUtcNow();
        if (leaf.NotAfter >= new DateTimeOffset(_ca.Certificate.NotAfter.ToUniversalTime()))
        {
            return false;
        }

        return now < leaf.NotBefore || leaf.NotAfter - now < (leaf.NotAfter - leaf.NotBefore) / 3;
    }

    private void LogCaExpiry()
    {
        var status = CaStatus;
        var notAfter = status.NotAfter.ToString("yyyy-MM-dd HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        switch (status.State)
        {
            case CaExpiryState.Expired:
                EngineLog.CaExpired(_logger!, _ca.CertificatePath, notAfter);
                break;
            case CaExpiryState.ExpiresSoon:
                EngineLog.CaExpiresSoon(_logger!, _ca.CertificatePath, notAfter, status.DaysLeft);
                break;
            default:
                EngineLog.CaValid(_logger!, _ca.CertificatePath, notAfter, status.DaysLeft);
                break;
        }
    }

    /// <summary>Counts one evicted leaf (under the lock); true when a collection is due.</summary>
    private bool Evicted()
    {
        if (++_evictedSinceCollect < _collectAfter)
        {
            return false;
        }

        _evictedSinceCollect = 0;
        return true;
    }

    /// <summary>A background (non-blocking) full collection, started off the handshake's thread.</summary>
    private static void RequestBackgroundCollection() =>
        ThreadPool.UnsafeQueueUserWorkItem(static _ => GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: false), null);

    private Leaf Mint(string host)
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

        var now = _time.GetUtcNow();
        var notBefore = now.AddDays(-1);
        var notAfter = now + LeafLifetime;
        var caNotAfter = new DateTimeOffset(_ca.Certificate.NotAfter.ToUniversalTime());
        if (notAfter > caNotAfter)
        {
            notAfter = caNotAfter;
        }

        Span<byte> serial = stackalloc byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        var generator = X509SignatureGenerator.CreateForECDsa(_ca.Key);
        using var unsigned = request.Create(_ca.Certificate.SubjectName, generator, notBefore, notAfter, serial);
        var leaf = unsigned.CopyWithPrivateKey(_leafKey);
        Interlocked.Increment(ref _minted);
        return new Leaf(SslStreamCertificateContext.Create(leaf, new X509Certificate2Collection(_ca.Certificate), offline: true), notBefore, notAfter);
    }

    private static string EscapeCn(string host) => host.Replace(",", string.Empty, StringComparison.Ordinal)
        .Replace("=", string.Empty, StringComparison.Ordinal).Replace("+", string.Empty, StringComparison.Ordinal);

    private sealed record Entry(string Host, Lazy<Leaf> Context);

    private sealed record Leaf(SslStreamCertificateContext Context, DateTimeOffset NotBefore, DateTimeOffset NotAfter);
}
