using System.Collections.Concurrent;
using ProxyGuard.Secrets.Resolution;

namespace ProxyGuard.Secrets;

/// <summary>
/// Resolves secret references on the proxy host:
/// <list type="bullet">
/// <item><c>env:NAME</c> — an environment variable of the proxy process (read on each call).</item>
/// <item><c>file:PATH</c> — a file (one line, trailing newline trimmed; refused if group/other-writable
/// or a directory; for a directory of files use <c>file:DIR/NAME</c>). Read on each call.</item>
/// <item><c>vault:MOUNT/data/PATH#FIELD</c> — HashiCorp Vault / OpenBao KV v2, cached per reference
/// (see <see cref="SecretResolverOptions.CacheTtl"/>); the returned value is a live handle that
/// follows refreshes and fails closed after TTL + grace without a successful refresh.</item>
/// </list>
/// </summary>
public sealed class SecretResolver : ISecretProvider, IDisposable
{
    private readonly SecretResolverOptions _options;
    private readonly Lazy<VaultClient> _vault;
    private readonly ConcurrentDictionary<string, VaultSecretEntry> _vaultEntries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _lifetime = new();
    private int _disposed;

    public SecretResolver(SecretResolverOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.CacheTtl <= TimeSpan.Zero || options.StaleGrace < TimeSpan.Zero || options.RequestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("CacheTtl and RequestTimeout must be positive and StaleGrace not negative.", nameof(options));
        }

        _options = options;
        History = options.History ?? new SecretHistory(timeProvider: options.TimeProvider);
        _vault = new Lazy<VaultClient>(() => new VaultClient(
            options.Vault ?? VaultOptions.FromEnvironment(options.Environment), options.RequestTimeout, options.MaxFileBytes));
    }

    public SecretResolver()
        : this(new SecretResolverOptions())
    {
    }

    /// <summary>Previous values of rotated secrets (see <see cref="SecretResolverOptions.History"/>).</summary>
    public SecretHistory History { get; }

    /// <inheritdoc />
    public async ValueTask<SecretValue> GetAsync(string reference, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var parsed = ParseReference(reference);
        switch (parsed.Kind)
        {
            case SecretReferenceKind.Env:
                var value = _options.Environment(parsed.Target);
                if (value is null)
                {
                    throw new SecretUnavailableException(reference, $"environment variable {parsed.Target} is not set");
                }

                if (value.Length == 0)
                {
                    throw new SecretUnavailableException(reference, $"environment variable {parsed.Target} is empty");
                }

                if (value.Contains('\n', StringComparison.Ordinal) || value.Contains('\r', StringComparison.Ordinal))
                {
                    throw new SecretUnavailableException(reference, $"environment variable {parsed.Target} holds more than one line");
                }

                return new SecretValue(value);
            case SecretReferenceKind.File:
                return new SecretValue(FileSecretReader.Read(reference, parsed.Target, _options.MaxFileBytes));
            default:
                var entry = _vaultEntries.GetOrAdd(reference, _ => new VaultSecretEntry(parsed, _vault.Value, _options, _lifetime.Token));
                await entry.EnsureAsync(ct);
                return entry.Handle;
        }
    }

    /// <summary>
    /// Synchronous best-effort resolve for <c>policy check</c>: null when the reference resolves now,
    /// otherwise a one-line reason (never containing the value). Contacts Vault for <c>vault:</c>.
    /// </summary>
    public string? Validate(string reference)
    {
        try
        {
            var value = GetAsync(reference, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            if (!value.IsAvailable)
            {
                _ = value.Reveal(); // throws with the reason; an available value is not revealed
            }

            return null;
        }
        catch (SecretUnavailableException ex)
        {
            return ex.Reason;
        }
    }

    /// <summary>Checks only the syntax of a reference: null when well-formed, else a one-line reason.</summary>
    public static string? ValidateSyntax(string reference)
    {
        return SecretReference.TryParse(reference ?? string.Empty, out _, out var error) ? null : error;
    }

    /// <summary>Parses with the policy's grammar (the only one); a malformed reference is unavailable.</summary>
    private static SecretReference ParseReference(string reference) =>
        SecretReference.TryParse(reference ?? string.Empty, out var parsed, out var error)
            ? parsed!
            : throw new SecretUnavailableException(reference ?? string.Empty, error!);

    /// <summary>True when the text has the form of a secret reference (<c>env:</c>, <c>file:</c> or <c>vault:</c>).</summary>
    public static bool IsReference(string text) =>
        text.StartsWith("env:", StringComparison.Ordinal) || text.StartsWith("file:", StringComparison.Ordinal)
        || text.StartsWith("vault:", StringComparison.Ordinal);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _lifetime.Cancel();
        if (_vault.IsValueCreated)
        {
            _vault.Value.Dispose();
        }

        _lifetime.Dispose();
    }
}
