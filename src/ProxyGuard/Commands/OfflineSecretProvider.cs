using System.Security.Cryptography;
using System.Text;
using ProxyGuard.Secrets;

namespace ProxyGuard.Commands;

/// <summary>
/// Secrets for the offline commands. <c>policy explain</c> resolves env: and file: references as the proxy host would
/// (never vault: — no network access); a reference that does not resolve here gets a stand-in value and is remembered,
/// so the explanation shows what the policy decides when the secret resolves, and says that it did not here.
/// <c>policy test</c> (<paramref name="resolve"/> false) never reads a secret: every reference gets its stand-in, so
/// cases give the same result on every machine.
/// </summary>
internal sealed class OfflineSecretProvider(bool resolve = true) : ISecretProvider, IDisposable
{
    private readonly SecretResolver _inner = new(new SecretResolverOptions());

    /// <summary>The references that did not resolve here, with the reason.</summary>
    public Dictionary<string, string> Unresolved { get; } = new(StringComparer.Ordinal);

    /// <summary>The value that stands in for <paramref name="reference"/> (synthetic, derived from the reference).</summary>
    public static string StandIn(string reference) =>
        "pgstandin" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(reference)))[..24];

    public async ValueTask<SecretValue> GetAsync(string reference, CancellationToken ct)
    {
        if (resolve)
        {
            try
            {
                return reference.StartsWith("vault:", StringComparison.Ordinal)
                    ? throw new SecretUnavailableException(reference, "vault references are not resolved offline")
                    : await _inner.GetAsync(reference, ct);
            }
            catch (SecretUnavailableException ex)
            {
                Unresolved[reference] = ex.Message;
            }
        }

        return new SecretValue(StandIn(reference));
    }

    public void Dispose() => _inner.Dispose();
}
