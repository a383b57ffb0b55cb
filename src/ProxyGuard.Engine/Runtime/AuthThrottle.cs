using System.Net;
using System.Net.Sockets;

namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Throttles failed client authentications (<c>Proxy-Authorization</c>) per source address: after
/// <see cref="MaxFailures"/> failures within <see cref="Window"/>, the address is blocked for
/// <see cref="Backoff"/>, during which its attempts are refused without looking at the token (so a
/// sandbox cannot keep guessing). A missing header is not a failure (clients send one only after the
/// 407 challenge). IPv4-mapped IPv6 counts as the IPv4 address; connections on a Unix socket share
/// one entry. The table holds at most <see cref="MaxTracked"/> addresses: when it is full, entries
/// whose window and block are over are dropped first, then the oldest half of those not blocked; a blocked
/// address is never evicted, and when the table is full of blocked addresses a failure from a new address is
/// refused as throttled (fail closed). Spraying from many addresses is bounded too: once more than
/// <see cref="MaxGlobalFailures"/> failures happened process-wide within <see cref="Window"/>, a single failure
/// blocks its address. So the guessing rate stays bounded by the table size per backoff period, whatever the
/// number of source addresses.
/// </summary>
internal sealed class AuthThrottle
{
    public const int MaxFailures = 20;
    public const int MaxTracked = 4096;
    public const int MaxGlobalFailures = 500;
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan Backoff = TimeSpan.FromSeconds(60);

    private readonly Dictionary<IPAddress, Entry> _entries = [];
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private DateTimeOffset _globalWindowStart;
    private int _globalFailures;

    public AuthThrottle(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The process-wide table the client identification uses.</summary>
    public static AuthThrottle Shared { get; } = new();

    public int Tracked
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>True while <paramref name="remote"/> is in its backoff.</summary>
    public bool IsBlocked(IPAddress? remote)
    {
        var key = Key(remote);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            return _entries.TryGetValue(key, out var entry) && entry.BlockedUntil > now;
        }
    }

    /// <summary>Counts a failed authentication; returns true when the address is now blocked.</summary>
    public bool RecordFailure(IPAddress? remote)
    {
        var key = Key(remote);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (now - _globalWindowStart > Window)
            {
                (_globalWindowStart, _globalFailures) = (now, 0);
            }

            var spraying = ++_globalFailures > MaxGlobalFailures;
            if (!_entries.TryGetValue(key, out var entry))
            {
                if (_entries.Count >= MaxTracked)
                {
                    Prune(now);
                    if (_entries.Count >= MaxTracked)
                    {
                        return true; // every tracked address is blocked: refuse new ones rather than forget a block
                    }
                }

                entry = new Entry { WindowStart = now };
                _entries[key] = entry;
            }

            if (entry.BlockedUntil > now)
            {
                return true;
            }

            if (now - entry.WindowStart > Window || entry.BlockedUntil != default)
            {
                entry.WindowStart = now;
                entry.Failures = 0;
                entry.BlockedUntil = default;
            }

            entry.Failures++;
            entry.LastSeen = now;
            if (entry.Failures >= MaxFailures || spraying)
            {
                entry.BlockedUntil = now + Backoff;
                return true;
            }

            return false;
        }
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var (address, entry) in _entries.ToList())
        {
            if (entry.BlockedUntil <= now && now - entry.WindowStart > Window)
            {
                _entries.Remove(address);
            }
        }

        if (_entries.Count >= MaxTracked)
        {
            foreach (var (address, _) in _entries.Where(e => e.Value.BlockedUntil <= now).OrderBy(e => e.Value.LastSeen).Take(_entries.Count / 2).ToList())
            {
                _entries.Remove(address);
            }
        }
    }

    private static IPAddress Key(IPAddress? remote)
    {
        if (remote is null)
        {
            return IPAddress.None; // Unix socket: one shared entry
        }

        if (remote.IsIPv4MappedToIPv6)
        {
            return remote.MapToIPv4();
        }

        return remote.AddressFamily == AddressFamily.InterNetworkV6 && remote.ScopeId != 0 ? new IPAddress(remote.GetAddressBytes()) : remote;
    }

    private sealed class Entry
    {
        public DateTimeOffset WindowStart;
        public DateTimeOffset LastSeen;
        public DateTimeOffset BlockedUntil;
        public int Failures;
    }
}
