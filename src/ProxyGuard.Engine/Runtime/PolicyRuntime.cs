using Microsoft.Extensions.Logging;
using ProxyGuard.Inspection;
using ProxyGuard.Policy;
using ProxyGuard.Secrets;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Runtime;

/// <summary>The result of a reload: success, or the diagnostics that kept the last good policy.</summary>
internal sealed record ReloadResult(bool Success, string? Sha256, IReadOnlyList<string> Errors);

/// <summary>
/// Holds the current <see cref="ProxySnapshot"/> and replaces it atomically on reload (file change,
/// SIGHUP, admin API). An invalid file never replaces a good policy.
/// </summary>
internal sealed class PolicyRuntime : IDisposable
{
    private readonly string _policyPath;
    private readonly ISecretProvider _secrets;
    private readonly byte[] _installationKey;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _reloadLock = new(1, 1);
    private readonly ProxyMetrics _metrics;
    private readonly Inspection.Budgets.ResourceBudget? _decodeBudget;
    private ProxySnapshot? _current;
    private PolicyPathWatcher? _watcher;
    private Timer? _debounce;
    private Timer? _secretRetry;
    private long _changeGeneration;
    private int _writesSeen;
    private int _renamesSeen;

    private const string ChangedWhileLoading = "the policy file changed while it was loaded";

    public PolicyRuntime(string policyPath, ISecretProvider secrets, byte[] installationKey, ProxyMetrics metrics, ILogger logger)
        : this(policyPath, secrets, installationKey, metrics, logger, null)
    {
    }

    /// <param name="decodeBudget">The process-wide decompression budget every snapshot's scanner charges.</param>
    public PolicyRuntime(string policyPath, ISecretProvider secrets, byte[] installationKey, ProxyMetrics metrics, ILogger logger, Inspection.Budgets.ResourceBudget? decodeBudget)
    {
        _decodeBudget = decodeBudget;
        _policyPath = Path.GetFullPath(policyPath);
        _secrets = secrets;
        _installationKey = installationKey;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Every detector id the content scanner knows (built-ins and <c>vault-secret</c>).</summary>
    public static IReadOnlyCollection<string> KnownDetectorIds { get; } =
        ContentScanner.Builtins.Select(d => d.Id).ToHashSet(StringComparer.Ordinal);

    public ProxySnapshot Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("no policy loaded");

    public string PolicyPath => _policyPath;

    public byte[] InstallationKey => _installationKey;

    public event Action<ProxySnapshot>? Reloaded;

    /// <summary>Loads the policy at start; throws <see cref="PolicyLoadException"/> with every diagnostic when invalid.</summary>
    /// <param name="validated">The policy already compiled from the file at start (<c>run</c> validates it first); null: load the file.</param>
    public async Task LoadInitialAsync(Policy.CompiledPolicy? validated, CancellationToken ct)
    {
        var result = await ReloadAsync(null, validated, ct);
        if (!result.Success)
        {
            throw new PolicyLoadException(result.Errors);
        }
    }

    public Task<ReloadResult> ReloadAsync(CancellationToken ct) => ReloadAsync(null, null, ct);

    /// <summary>
    /// Reloads; with <paramref name="expectedSha256"/>, a file whose content is no longer the one that settled is
    /// not applied (the result says so and the caller waits for it to settle again).
    /// </summary>
    private async Task<ReloadResult> ReloadAsync(string? expectedSha256, Policy.CompiledPolicy? validated, CancellationToken ct)
    {
        await _reloadLock.WaitAsync(ct);
        try
        {
            PolicyLoadResult loaded;
            try
            {
                loaded = validated is not null ? new PolicyLoadResult(validated, []) : PolicyLoader.LoadFile(_policyPath, new PolicyLoadOptions { KnownDetectorIds = KnownDetectorIds });
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                loaded = new PolicyLoadResult(null, [new PolicyDiagnostic(_policyPath, 0, 0, ex.Message)]);
            }

            if (expectedSha256 is not null && loaded.Policy is { } candidate && !string.Equals(candidate.Sha256, expectedSha256, StringComparison.Ordinal))
            {
                return new ReloadResult(false, null, [ChangedWhileLoading]);
            }

            if (!loaded.Success)
            {
                var errors = loaded.Diagnostics.Select(d => d.ToString()).ToList();
                LogRejected(errors);
                _metrics.PolicyReloads.WithLabels("error").Inc();
                return new ReloadResult(false, null, errors);
            }

            ProxySnapshot snapshot;
            try
            {
                snapshot = await SnapshotBuilder.BuildAsync(loaded.Policy!, _secrets, _installationKey, ct, _decodeBudget);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                var error = ex is PolicyFileException file ? file.Diagnostic.ToString() : $"{_policyPath}: {ex.Message}";
                LogRejected([error]);
                _metrics.PolicyReloads.WithLabels("error").Inc();
                return new ReloadResult(false, null, [error]);
            }

            foreach (var problem in snapshot.Unavailable)
            {
                EngineLog.SecretUnavailable(_logger, problem.Name, problem.Reason);
            }

            foreach (var client in snapshot.Clients.Where(c => c.Problem is not null))
            {
                EngineLog.ClientUnusable(_logger, client.Id, client.Problem);
            }

            var previous = Interlocked.Exchange(ref _current, snapshot);
            _metrics.PolicyReloads.WithLabels("ok").Inc();
            _metrics.SetPolicy(snapshot.Policy.Sha256);
            if (previous is not null)
            {
                EngineLog.PolicyReloaded(_logger, _policyPath, snapshot.Policy.Sha256);
            }

            Reloaded?.Invoke(snapshot);
            ScheduleSecretRetry(snapshot);
            return new ReloadResult(true, snapshot.Policy.Sha256, []);
        }
        finally
        {
            _reloadLock.Release();
        }
    }

    /// <summary>
    /// Starts a reload without waiting for it (SIGHUP); the outcome is logged. Never throws.
    /// </summary>
    public void ReloadInBackground(string trigger) => RunInBackground(trigger, () => ReloadAsync(CancellationToken.None));

    /// <summary>
    /// Starts an automatic reload (file watcher, secret retry) that applies the file only once it has stayed
    /// unchanged for <see cref="SettleInterval"/> (same size, modification time and SHA-256), or at once when the
    /// last change was an atomic rename onto the policy name. A file still being written is never applied.
    /// </summary>
    public void ReloadWhenSettledInBackground(string trigger, bool arrivedByRename = false) =>
        RunInBackground(trigger, () => ReloadWhenSettledAsync(arrivedByRename, CancellationToken.None));

    private void RunInBackground(string trigger, Func<Task> reload)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                EngineLog.PolicyReloading(_logger, _policyPath, trigger);
                await reload();
            }
            catch (ObjectDisposedException)
            {
                // Shutting down.
            }
            catch (Exception ex)
            {
                EngineLog.PolicyReloadFailed(_logger, ex, trigger);
            }
        });
    }

    /// <summary>
    /// Waits until the policy file has stayed the same for <see cref="SettleInterval"/>, then reloads it, provided
    /// the content loaded is the content that settled. Returns null when the file kept changing for
    /// <see cref="SettleLimit"/> or a newer change superseded this reload (the newer one applies it).
    /// </summary>
    internal async Task<ReloadResult?> ReloadWhenSettledAsync(bool arrivedByRename, CancellationToken ct)
    {
        var generation = Volatile.Read(ref _changeGeneration);
        var started = Environment.TickCount64;
        var settled = arrivedByRename ? Fingerprint() : null;
        while (true)
        {
            if (Environment.TickCount64 - started > (long)SettleLimit.TotalMilliseconds)
            {
                EngineLog.PolicyNeverSettled(_logger, _policyPath, SettleLimit.TotalSeconds);
                return null;
            }

            if (settled is null)
            {
                var before = Fingerprint();
                await Task.Delay(SettleInterval, ct);
                if (Volatile.Read(ref _changeGeneration) != generation)
                {
                    return null; // a newer change started its own settle wait
                }

                var after = Fingerprint();
                if (before != after)
                {
                    continue;
                }

                settled = after;
            }

            var result = await ReloadAsync(settled.Sha256, null, ct);
            if (result.Errors is [ChangedWhileLoading])
            {
                settled = null; // it changed between the check and the load: settle again
                continue;
            }

            return result;
        }
    }

    /// <summary>Size, modification time and content hash of the policy file; a missing or unreadable file has its own fingerprint.</summary>
    private FileFingerprint Fingerprint()
    {
        try
        {
            var info = new FileInfo(_policyPath);
            var bytes = Policy.IO.BoundedFile.ReadAllBytes(_policyPath, PolicyLoader.MaxFileBytes, Policy.IO.BoundedFile.DefaultTimeout);
            return new FileFingerprint(bytes.LongLength, info.LastWriteTimeUtc, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new FileFingerprint(-1, default, ex.Message);
        }
    }

    private sealed record FileFingerprint(long Length, DateTime LastWriteUtc, string Sha256);

    /// <summary>
    /// Reloads when the policy file changes (debounced). The directory is watched and events are
    /// filtered by the file name, so editors that save by writing a temporary file and renaming it
    /// over the policy (a new inode), or that move the old file away and write a new one, are seen
    /// as well as in-place writes. When the policy path is (or passes through) a symbolic link, every
    /// link on the way and the file finally reached are watched too, and the set is recomputed after
    /// each change: a Kubernetes ConfigMap volume (<c>policy.yaml -> ..data/policy.yaml</c>, with
    /// <c>..data</c> swapped atomically to a new directory) or an edited link target is followed.
    /// When the platform cannot watch (e.g. the inotify instance limit is reached), a warning is
    /// logged; SIGHUP and the admin API still reload.
    /// </summary>
    public void WatchFile()
    {
        _debounce = new Timer(
            _ =>
            {
                // Follow a retargeted link before reading: a change after this refresh is seen by the new watchers,
                // one before it by the reload below.
                _watcher?.Refresh();

                // Only renames since the last reload: a complete file arrived atomically.
                var writes = Interlocked.Exchange(ref _writesSeen, 0);
                var renames = Interlocked.Exchange(ref _renamesSeen, 0);
                var renamedOnly = writes == 0 && renames != 0;
                ReloadWhenSettledInBackground("file changed", renamedOnly);
            },
            null,
            Timeout.Infinite,
            Timeout.Infinite);
        var watcher = new PolicyPathWatcher(
            _policyPath,
            kind =>
            {
                // A deleted or moved-away policy keeps the last good one loaded (the reload reports it);
                // the next file written under the name is picked up.
                switch (kind)
                {
                    case PolicyPathWatcher.ChangeKind.Write:
                        Interlocked.Increment(ref _writesSeen);
                        break;
                    case PolicyPathWatcher.ChangeKind.Rename:
                        Interlocked.Increment(ref _renamesSeen);
                        break;
                }

                Debounce();
            },
            (directory, message) => EngineLog.WatcherError(_logger, directory, message));
        if (watcher.Refresh() is { } problem)
        {
            watcher.Dispose();
            EngineLog.WatchUnavailable(_logger, _policyPath, problem);
            return;
        }

        _watcher = watcher;
    }

    private void Debounce()
    {
        Interlocked.Increment(ref _changeGeneration);
        try
        {
            _debounce?.Change(200, Timeout.Infinite);
        }
        catch (ObjectDisposedException)
        {
            // Shutting down.
        }
    }

    private void LogRejected(IReadOnlyList<string> errors)
    {
        // At start there is no last good policy: the caller reports the errors and refuses to start.
        if (Volatile.Read(ref _current) is null)
        {
            return;
        }

        foreach (var error in errors)
        {
            EngineLog.PolicyRejected(_logger, error);
        }
    }

    /// <summary>
    /// How long the policy file must stay unchanged before an automatic reload applies it (default 250 ms;
    /// <c>PROXYGUARD_POLICY_SETTLE_MS</c> overrides). SIGHUP and <c>POST /api/policy/reload</c> do not wait.
    /// </summary>
    public TimeSpan SettleInterval { get; init; } = TimeSpan.FromMilliseconds(
        int.TryParse(Environment.GetEnvironmentVariable("PROXYGUARD_POLICY_SETTLE_MS"), out var ms) && ms is > 0 and <= 60_000 ? ms : 250);

    /// <summary>How long an automatic reload waits for a file that keeps changing before it gives up (default 30 s).</summary>
    public TimeSpan SettleLimit { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often secrets or client tokens that did not resolve are tried again.</summary>
    public TimeSpan SecretRetryInterval { get; init; } = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("PROXYGUARD_SECRET_RETRY"), out var seconds) && seconds > 0 ? seconds : 30);

    /// <summary>
    /// A secret (or client token) that could not be resolved when the snapshot was built (Vault down,
    /// 403, 404, a missing file) is retried by rebuilding the snapshot until it resolves; meanwhile
    /// requests that carry its placeholder keep failing closed.
    /// </summary>
    private void ScheduleSecretRetry(ProxySnapshot snapshot)
    {
        var missing = snapshot.Unavailable.Count > 0 || snapshot.Clients.Any(c => c.Problem is not null);
        if (!missing)
        {
            _secretRetry?.Change(Timeout.Infinite, Timeout.Infinite);
            return;
        }

        _secretRetry ??= new Timer(_ => ReloadWhenSettledInBackground("retrying unavailable secrets"), null, Timeout.Infinite, Timeout.Infinite);
        _secretRetry.Change(SecretRetryInterval, Timeout.InfiniteTimeSpan);
    }

    public void Dispose()
    {
        _secretRetry?.Dispose();
        _watcher?.Dispose();
        _debounce?.Dispose();
        _reloadLock.Dispose();
    }
}

internal sealed class PolicyLoadException : Exception
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
