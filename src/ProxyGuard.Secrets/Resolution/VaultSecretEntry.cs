using System.Text;

namespace ProxyGuard.Secrets.Resolution;

/// <summary>
/// The cache entry of one <c>vault:</c> reference and the live source behind its <see cref="SecretValue"/>.
/// Fresh for <c>CacheTtl</c>; refreshed in the background from 3/4 of it; served stale for
/// <c>StaleGrace</c> past it while Vault fails; then fails closed.
/// </summary>
internal sealed class VaultSecretEntry : ISecretSource
{
    private readonly object _gate = new();
    private readonly SecretReference _reference;
    private readonly VaultClient _client;
    private readonly SecretResolverOptions _options;
    private readonly CancellationToken _lifetime;

    private byte[]? _value;
    private long _version;
    private DateTimeOffset _fetchedAt;
    private DateTimeOffset _nextBackgroundAttempt;
    private string? _lastError;
    private Task? _refresh;

    public VaultSecretEntry(SecretReference reference, VaultClient client, SecretResolverOptions options, CancellationToken lifetime)
    {
        _reference = reference;
        _client = client;
        _options = options;
        _lifetime = lifetime;
        Handle = new SecretValue(this);
    }

    public SecretValue Handle { get; }

    public bool IsAvailable
    {
        get
        {
            lock (_gate)
            {
                return _value is not null && Age() < _options.CacheTtl + _options.StaleGrace;
            }
        }
    }

    /// <summary>Makes sure a usable value is cached: fetches when missing or past TTL.</summary>
    public async ValueTask EnsureAsync(CancellationToken ct)
    {
        bool hadValue;
        TimeSpan age;
        lock (_gate)
        {
            hadValue = _value is not null;
            age = Age();
        }

        if (hadValue && age < _options.CacheTtl)
        {
            if (age >= RefreshAhead)
            {
                StartBackgroundRefresh();
            }

            return;
        }

        try
        {
            await StartRefresh().WaitAsync(ct);
        }
        catch (SecretUnavailableException) when (IsAvailable)
        {
            // Vault is failing but the old value is within TTL + grace: keep serving it.
        }
    }

    public string Reveal()
    {
        var value = RevealUtf8();
        try
        {
            return Encoding.UTF8.GetString(value);
        }
        finally
        {
            Array.Clear(value);
        }
    }

    public byte[] RevealUtf8()
    {
        byte[]? value;
        TimeSpan age;
        string? lastError;
        lock (_gate)
        {
            value = _value;
            age = Age();
            lastError = _lastError;
        }

        if (value is null)
        {
            StartBackgroundRefresh();
            throw new SecretUnavailableException(_reference.Text, lastError ?? "not fetched from vault yet");
        }

        if (age >= RefreshAhead)
        {
            StartBackgroundRefresh();
        }

        if (age >= _options.CacheTtl + _options.StaleGrace)
        {
            throw new SecretUnavailableException(_reference.Text,
                $"cached value expired (TTL {_options.CacheTtl} + grace {_options.StaleGrace}) and vault could not refresh it; failing closed"
                + (lastError is null ? string.Empty : $" (last error: {lastError})"));
        }

        return (byte[])value.Clone();
    }

    public byte[]? PeekUtf8()
    {
        lock (_gate)
        {
            return (byte[]?)_value?.Clone();
        }
    }

    public long Version
    {
        get
        {
            lock (_gate)
            {
                return _version;
            }
        }
    }

    private TimeSpan RefreshAhead => _options.CacheTtl * 0.75;

    private TimeSpan Age() => _options.TimeProvider.GetUtcNow() - _fetchedAt;

    private void StartBackgroundRefresh()
    {
        lock (_gate)
        {
            var now = _options.TimeProvider.GetUtcNow();
            if ((_refresh is not null && !_refresh.IsCompleted) || now < _nextBackgroundAttempt || _lifetime.IsCancellationRequested)
            {
                return;
            }

            _nextBackgroundAttempt = now + _options.RetryInterval;
        }

        var task = StartRefresh();
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Single flight: joins the refresh in progress or starts one.</summary>
    private Task StartRefresh()
    {
        lock (_gate)
        {
            if (_refresh is null || _refresh.IsCompleted)
            {
                _refresh = Task.Run(RefreshCoreAsync, CancellationToken.None);
            }

            return _refresh;
        }
    }

    private async Task RefreshCoreAsync()
    {
        try
        {
            var value = Encoding.UTF8.GetBytes(await _client.ReadFieldAsync(_reference, _lifetime));
            lock (_gate)
            {
                if (_value is null || !_value.AsSpan().SequenceEqual(value))
                {
                    // The previous array may still be referenced by a reader; it is dropped, not cleared.
                    _value = value;
                    _version++;
                }
                else
                {
                    Array.Clear(value);
                }

                _fetchedAt = _options.TimeProvider.GetUtcNow();
                _lastError = null;
            }
        }
        catch (SecretUnavailableException ex)
        {
            lock (_gate)
            {
                _lastError = ex.Reason;
            }

            throw;
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            throw new SecretUnavailableException(_reference.Text, "secret resolver is shut down");
        }
        catch (Exception ex)
        {
            // Unexpected failure: report its type only (messages of arbitrary exceptions are not vetted).
            var reason = $"vault request failed: {ex.GetType().Name}";
            lock (_gate)
            {
                _lastError = reason;
            }

            throw new SecretUnavailableException(_reference.Text, reason);
        }
    }
}
