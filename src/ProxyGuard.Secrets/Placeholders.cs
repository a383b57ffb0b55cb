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
    public const int MinimumExplicitLength = 12;

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
    /// It must be at least <see cref="MinimumExplicitLength"/> characters of <c>[A-Za-z0-9_-]</c>
    /// (safe in headers, URLs and Basic credentials without encoding).
    /// </summary>
    public static string? ValidateExplicit(string placeholder)
    {
        if (string.IsNullOrEmpty(placeholder) || placeholder.Length < MinimumExplicitLength)
        {
            return $"placeholder must be at least {MinimumExplicitLength} characters";
        }

        foreach (var c in placeholder)
        {
            if (c is not ((>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-'))
            {
                return "placeholder may contain only letters, digits, '_' and '-'";
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
