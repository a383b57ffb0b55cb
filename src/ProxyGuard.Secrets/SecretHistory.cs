namespace ProxyGuard.Secrets;

/// <summary>
/// Remembers the previous values of each secret after they change (a <c>file:</c> secret rewritten and
/// the policy reloaded, a Vault refresh returning a new value), for <see cref="Grace"/> after the
/// change and at most <see cref="MaxPrevious"/> values per secret (the oldest is forgotten first).
/// The substitutor keeps scrubbing these values from responses and denies requests that carry them.
/// One instance lives as long as the process (it is held by the secret resolver) so it spans reloads.
/// Values are held as UTF-8 byte arrays, cleared when forgotten; nothing here renders a value.
/// Thread-safe.
/// </summary>
public sealed class SecretHistory
{
    /// <summary>Default grace period: 24 hours.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromHours(24);

    /// <summary>Default number of previous values remembered per secret.</summary>
    public const int DefaultMaxPrevious = 4;

    /// <summary>Variable overriding <see cref="Grace"/> (seconds; 0 disables remembering).</summary>
    public const string GraceVariable = "PROXYGUARD_SECRET_ROTATION_GRACE";

    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private long _version;

    public SecretHistory(TimeSpan? grace = null, int maxPrevious = DefaultMaxPrevious, TimeProvider? timeProvider = null)
    {
        var g = grace ?? DefaultGrace;
        if (g < TimeSpan.Zero || g > TimeSpan.FromDays(30))
        {
            throw new ArgumentOutOfRangeException(nameof(grace), "The rotation grace must be between 0 and 30 days.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(maxPrevious);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxPrevious, 64);
        Grace = g;
        MaxPrevious = maxPrevious;
        TimeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>How long a previous value stays known after it was replaced.</summary>
    public TimeSpan Grace { get; }

    /// <summary>At most this many previous values are remembered per secret.</summary>
    public int MaxPrevious { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary>Changes whenever a value is remembered or forgotten.</summary>
    internal long Version => Interlocked.Read(ref _version);

    /// <summary>
    /// Records the current value of secret <paramref name="name"/>. If it differs from the value
    /// recorded before, that one becomes a previous value (known until now + <see cref="Grace"/>).
    /// A value that comes back (rotated back) is no longer a previous one.
    /// </summary>
    internal void Observe(string name, ReadOnlySpan<byte> current)
    {
        lock (_gate)
        {
            var now = TimeProvider.GetUtcNow();
            if (!_entries.TryGetValue(name, out var entry))
            {
                _entries[name] = new Entry(current.ToArray());
                return;
            }

            if (entry.Current.AsSpan().SequenceEqual(current))
            {
                return;
            }

            for (var i = entry.Previous.Count - 1; i >= 0; i--)
            {
                if (entry.Previous[i].Value.AsSpan().SequenceEqual(current))
                {
                    Array.Clear(entry.Previous[i].Value);
                    entry.Previous.RemoveAt(i);
                }
            }

            if (MaxPrevious > 0 && Grace > TimeSpan.Zero)
            {
                entry.Previous.Add((entry.Current, now + Grace));
            }
            else
            {
                Array.Clear(entry.Current);
            }

            while (entry.Previous.Count > MaxPrevious)
            {
                Array.Clear(entry.Previous[0].Value);
                entry.Previous.RemoveAt(0);
            }

            entry.Current = current.ToArray();
            Interlocked.Increment(ref _version);
        }
    }

    /// <summary>
    /// Copies of the previous values of <paramref name="name"/> still within their grace (the caller
    /// clears them after use); <paramref name="nextExpiry"/> is when the first of them is forgotten.
    /// </summary>
    internal List<byte[]> Previous(string name, ref DateTimeOffset nextExpiry)
    {
        var result = new List<byte[]>();
        lock (_gate)
        {
            if (!_entries.TryGetValue(name, out var entry))
            {
                return result;
            }

            var now = TimeProvider.GetUtcNow();
            for (var i = entry.Previous.Count - 1; i >= 0; i--)
            {
                var (value, until) = entry.Previous[i];
                if (until <= now)
                {
                    Array.Clear(value);
                    entry.Previous.RemoveAt(i);
                    Interlocked.Increment(ref _version);
                    continue;
                }

                result.Add((byte[])value.Clone());
                if (until < nextExpiry)
                {
                    nextExpiry = until;
                }
            }
        }

        return result;
    }

    /// <summary>Reads <see cref="GraceVariable"/> (seconds) through <paramref name="environment"/>; defaults otherwise.</summary>
    /// <exception cref="ArgumentException">The variable is set but is not a number of seconds between 0 and 30 days.</exception>
    public static SecretHistory FromEnvironment(Func<string, string?>? environment = null, TimeProvider? timeProvider = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var text = environment(GraceVariable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return new SecretHistory(null, DefaultMaxPrevious, timeProvider);
        }

        if (!double.TryParse(text.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
            || double.IsNaN(seconds) || seconds < 0 || seconds > 30 * 24 * 3600)
        {
            throw new ArgumentException($"{GraceVariable} must be a number of seconds between 0 and 2592000 (got '{text.Trim()}').");
        }

        return new SecretHistory(TimeSpan.FromSeconds(seconds), DefaultMaxPrevious, timeProvider);
    }

    /// <inheritdoc />
    public override string ToString() => $"SecretHistory {{ Grace = {Grace}, MaxPrevious = {MaxPrevious} }}";

    private sealed class Entry(byte[] current)
    {
        public byte[] Current { get; set; } = current;

        public List<(byte[] Value, DateTimeOffset Until)> Previous { get; } = [];
    }
}
