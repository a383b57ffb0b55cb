using Microsoft.Extensions.Logging;
using ProxyGuard.Policy;
using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Runtime;

/// <summary>The result of a reload: success, or the diagnostics that kept the last good policy.</summary>
public sealed record ReloadResult(bool Success, string? Sha256, IReadOnlyList<string> Errors);

/// <summary>
/// Holds the current <see cref="ProxySnapshot"/> and replaces it atomically on reload (file change,
/// SIGHUP, admin API). An invalid file never replaces a good policy.
/// </summary>
public sealed class PolicyRuntime : IDisposable
{
    private readonly string _policyPath;
    private readonly ISecretProvider _secrets;
    private readonly byte[] _installationKey;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _reloadLock = new(1, 1);
    private readonly ProxyMetrics _metrics;
    private ProxySnapshot? _current;
    private FileSystemWatcher? _watcher;
    private Timer? _debounce;

    public PolicyRuntime(string policyPath, ISecretProvider secrets, byte[] installationKey, ProxyMetrics metrics, ILogger logger)
    {
        _policyPath = Path.GetFullPath(policyPath);
        _secrets = secrets;
        _installationKey = installationKey;
        _metrics = metrics;
        _logger = logger;
    }

    public ProxySnapshot Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("no policy loaded");

    public string PolicyPath => _policyPath;

    public byte[] InstallationKey => _installationKey;

    public event Action<ProxySnapshot>? Reloaded;

    /// <summary>Loads the policy at start; throws <see cref="PolicyLoadException"/> with every diagnostic when invalid.</summary>
    public async Task LoadInitialAsync(CancellationToken ct)
    {
        var result = await ReloadAsync(ct);
        if (!result.Success)
        {
            throw new PolicyLoadException(result.Errors);
        }
    }

    public async Task<ReloadResult> ReloadAsync(CancellationToken ct)
    {
        await _reloadLock.WaitAsync(ct);
        try
        {
            PolicyLoadResult loaded;
            try
            {
                loaded = PolicyLoader.LoadFile(_policyPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                loaded = new PolicyLoadResult(null, [new PolicyDiagnostic(_policyPath, 0, 0, ex.Message)]);
            }

            if (!loaded.Success)
            {
                var errors = loaded.Diagnostics.Select(d => d.ToString()).ToList();
                foreach (var error in errors)
                {
                    _logger.LogError("policy reload rejected, keeping the last good policy: {Error}", error);
                }

                _metrics.PolicyReloads.WithLabels("error").Inc();
                return new ReloadResult(false, null, errors);
            }

            ProxySnapshot snapshot;
            try
            {
                snapshot = await SnapshotBuilder.BuildAsync(loaded.Policy!, _secrets, _installationKey, ct);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                var error = $"{_policyPath}: {ex.Message}";
                _logger.LogError("policy reload rejected, keeping the last good policy: {Error}", error);
                _metrics.PolicyReloads.WithLabels("error").Inc();
                return new ReloadResult(false, null, [error]);
            }

            foreach (var problem in snapshot.Unavailable)
            {
                _logger.LogWarning("secret {Name} is unavailable, requests that carry its placeholder are denied: {Reason}", problem.Name, problem.Reason);
            }

            foreach (var client in snapshot.Clients.Where(c => c.Problem is not null))
            {
                _logger.LogWarning("client {Id} cannot authenticate: {Reason}", client.Id, client.Problem);
            }

            var previous = Interlocked.Exchange(ref _current, snapshot);
            _metrics.PolicyReloads.WithLabels("ok").Inc();
            if (previous is not null)
            {
                _logger.LogInformation("policy reloaded from {File} (sha256 {Sha})", _policyPath, snapshot.Policy.Sha256);
            }

            Reloaded?.Invoke(snapshot);
            return new ReloadResult(true, snapshot.Policy.Sha256, []);
        }
        finally
        {
            _reloadLock.Release();
        }
    }

    /// <summary>Reloads when the policy file changes (debounced).</summary>
    public void WatchFile()
    {
        var directory = Path.GetDirectoryName(_policyPath)!;
        var name = Path.GetFileName(_policyPath);
        _debounce = new Timer(_ => _ = ReloadAsync(CancellationToken.None), null, Timeout.Infinite, Timeout.Infinite);
        _watcher = new FileSystemWatcher(directory, name)
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        FileSystemEventHandler changed = (_, _) => _debounce.Change(200, Timeout.Infinite);
        _watcher.Changed += changed;
        _watcher.Created += changed;
        _watcher.Renamed += (_, _) => _debounce.Change(200, Timeout.Infinite);
        _watcher.EnableRaisingEvents = true;
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        _debounce?.Dispose();
        _reloadLock.Dispose();
    }
}

public sealed class PolicyLoadException : Exception
{
    public PolicyLoadException(IReadOnlyList<string> errors)
        : base(string.Join(Environment.NewLine, errors))
    {
        Errors = errors;
    }

    public PolicyLoadException()
    {
        Errors = [];
    }

    public PolicyLoadException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errors = [message];
    }

    public IReadOnlyList<string> Errors { get; }
}
