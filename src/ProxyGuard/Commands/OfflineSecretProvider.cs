using ProxyGuard.Secrets;

namespace ProxyGuard.Commands;

/// <summary>Resolves env: and file: references only: <c>policy explain</c> makes no network access.</summary>
internal sealed class OfflineSecretProvider : ISecretProvider, IDisposable
{
    private readonly SecretResolver _inner = new(new SecretResolverOptions());

    public ValueTask<SecretValue> GetAsync(string reference, CancellationToken ct) =>
        reference.StartsWith("vault:", StringComparison.Ordinal)
            ? throw new SecretUnavailableException(reference, "vault references are not resolved offline")
            : _inner.GetAsync(reference, ct);

    public void Dispose() => _inner.Dispose();
}
