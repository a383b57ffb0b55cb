using System.Security.Cryptography;
using System.Text;
using ProxyGuard.Secrets;

namespace ProxyGuard.Commands;

/// <summary>
/// Secrets for the offline commands. Every reference gets a stand-in value derived from the reference, so
/// <c>policy explain</c> and <c>policy test</c> decide on placeholders alone and give the same answer on every machine,
/// whatever the author's shell holds (a real value read here would change what the content scan knows).
/// With <paramref name="check"/> (<c>policy explain</c>) each env: and file: reference is also resolved as the proxy
/// host would, only to say when it does not resolve here and where it looked; the value read is dropped at once.
/// vault: is never contacted offline.
/// </summary>
internal sealed class OfflineSecretProvider(bool check = true) : ISecretProvider, IDisposable
{
    private readonly SecretResolver _inner = new(new SecretResolverOptions());

    /// <summary>The references that did not resolve here (or were not looked up), with where it looked.</summary>
    public Dictionary<string, string> Unresolved { get; } = new(StringComparer.Ordinal);

    /// <summary>The value that stands in for <paramref name="reference"/> (synthetic, derived from the reference).</summary>
    public static string StandIn(string reference) =>
        "pgstandin" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(reference)))[..24];

    public async ValueTask<SecretValue> GetAsync(string reference, CancellationToken ct)
    {
        if (check)
        {
            try
            {
                // Resolved only to tell whether it would: the value itself is never used (nor kept).
                _ = reference.StartsWith("vault:", StringComparison.Ordinal)
                    ? throw new SecretUnavailableException(reference, "vault: references are not looked up offline")
                    : await _inner.GetAsync(reference, ct);
            }
            catch (SecretUnavailableException ex)
            {
                Unresolved[reference] = ex.Reason;
            }
        }

        return new SecretValue(StandIn(reference));
    }

    public void Dispose() => _inner.Dispose();
}
