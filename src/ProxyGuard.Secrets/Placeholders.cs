using System.Security.Cryptography;
using System.Text;

namespace ProxyGuard.Secrets;

/// <summary>
/// Placeholders: what the sandbox holds instead of a real secret.
/// Derived format: <c>PG_</c> + the secret name upper-cased (every character outside A–Z and 0–9
/// becomes <c>_</c>) + <c>_</c> + 16 characters of RFC 4648 base32 (A–Z, 2–7) of the first 80 bits of
/// HMAC-SHA256(installationKey, UTF-8(name)). Example: <c>PG_GITHUB_K7Q2MZ4XW3ABCD5E</c>.
/// The result uses only <c>[A-Z0-9_]</c>, so it is valid unchanged in header values, URLs (user,
/// password, path, query), Basic credentials, .npmrc and environment variables. It depends only on
/// the name and a per-installation key, never on the real value.
/// </summary>
public static class Placeholders
{
    /// <summary>Prefix of every derived placeholder.</summary>
    public const string Prefix = "PG_";

    /// <summary>Shortest explicit placeholder accepted by <see cref="ValidateExplicit"/>.</summary>
    public const int MinimumExplicitLength = 16;

    /// <summary>Longest explicit placeholder accepted by <see cref="ValidateExplicit"/>.</summary>
    public const int MaximumExplicitLength = 256;

    private const string Base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    /// <summary>Derives the placeholder of a secret (stable for a given name and installation key).</summary>
    public static string Derive(string secretName, ReadOnlySpan<byte> installationKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(secretName);
        if (installationKey.Length < 16)
        {
            throw new ArgumentException("The installation key must be at least 16 bytes.", nameof(installationKey));
        }

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(installationKey, Encoding.UTF8.GetBytes(secretName), mac);

        var builder = new StringBuilder(Prefix.Length + secretName.Length + 17);
        builder.Append(Prefix);
        foreach (var c in secretName)
        {
            builder.Append(c is >= 'a' and <= 'z' ? (char)(c - 32) : c is (>= 'A' and <= 'Z') or (>= '0' and <= '9') ? c : '_');
        }

        builder.Append('_');
        AppendBase32(builder, mac[..10]);
        return builder.ToString();
    }

    /// <summary>A new random 32-byte installation key (store it with mode 0600 next to the data).</summary>
    public static byte[] GenerateInstallationKey() => RandomNumberGenerator.GetBytes(32);

    /// <summary>
    /// Checks an explicit placeholder from the policy: null when acceptable, else a one-line reason.
    /// The rule is the policy validator's (docs/policy.md, <c>secrets[].placeholder</c>): <see cref="MinimumExplicitLength"/>
    /// to <see cref="MaximumExplicitLength"/> characters of <c>[A-Za-z0-9_]</c> (safe unencoded in headers, URLs, JSON and
    /// Basic credentials; no <c>-</c>, which some of those forms treat specially).
    /// </summary>
    public static string? ValidateExplicit(string placeholder)
    {
        if (string.IsNullOrEmpty(placeholder) || placeholder.Length < MinimumExplicitLength || placeholder.Length > MaximumExplicitLength)
        {
            return $"placeholder must be {MinimumExplicitLength} to {MaximumExplicitLength} characters";
        }

        foreach (var c in placeholder)
        {
            if (c is not ((>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_'))
            {
                return "placeholder may contain only letters, digits and '_'";
            }
        }

        return null;
    }

    private static void AppendBase32(StringBuilder builder, ReadOnlySpan<byte> data)
    {
        var buffer = 0;
        var bits = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                bits -= 5;
                builder.Append(Base32Alphabet[(buffer >> bits) & 31]);
            }
        }

        if (bits > 0)
        {
            builder.Append(Base32Alphabet[(buffer << (5 - bits)) & 31]);
        }
    }
}
