namespace ProxyGuard.Engine.Certificates;

/// <summary>
/// Leaf certificates for names whose CONNECT was refused, so that the refusal can be read inside TLS (readable
/// denials). Bounded separately from the leaves of allowed hosts, so that denied names can neither evict those nor
/// grow memory: a small LRU (<see cref="Capacity"/> names) and a token bucket on new mintings (a burst of
/// <see cref="Burst"/>, then <see cref="PerSecond"/> a second, per process). A name the bucket refuses gets the
/// plain 403 before TLS.
/// </summary>
internal sealed class DenialCertificates : IDisposable
{
    public const int Capacity = 256;
    public const int Burst = 32;
    public const double PerSecond = 8;

    private readonly LeafCertificateCache _cache;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private double _tokens = Burst;
    private long _refilledAt;

    public DenialCertificates(CertificateAuthority ca, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _cache = new LeafCertificateCache(ca, Capacity, logger: null, time: _time);
        _refilledAt = _time.GetTimestamp();
    }

    /// <summary>Leaves minted for denied names since start.</summary>
    public long Minted => _cache.Minted;

    /// <summary>True when a leaf for <paramref name="host"/> is cached or may be minted now (takes one token).</summary>
    public bool TryAdmit(string host)
    {
        if (_cache.Contains(host))
        {
            return true;
        }

        lock (_lock)
        {
            var now = _time.GetTimestamp();
            _tokens = Math.Min(Burst, _tokens + (_time.GetElapsedTime(_refilledAt, now).TotalSeconds * PerSecond));
            _refilledAt = now;
            if (_tokens < 1)
            {
                return false;
            }

            _tokens -= 1;
            return true;
        }
    }

    public System.Net.Security.SslStreamCertificateContext Get(string host) => _cache.Get(host);

    public void Dispose() => _cache.Dispose();
}
