using System.Security.Cryptography;
using System.Text;
using ProxyGuard.Engine.Certificates;

namespace ProxyGuard.Engine.Hosting;

/// <summary>The admin API bearer token: from PROXYGUARD_ADMIN_TOKEN, or generated into the data dir (mode 0600).</summary>
internal sealed class AdminToken
{
    public const string FileName = "admin.token";
    private readonly byte[] _tokenHash;

    private AdminToken(string token, string source)
    {
        _tokenHash = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        Source = source;
    }

    public string Source { get; }

    public static AdminToken Load(string? explicitToken, string dataDirectory)
    {
        if (!string.IsNullOrEmpty(explicitToken))
        {
            return new AdminToken(explicitToken, "configured");
        }

        var fromEnv = Environment.GetEnvironmentVariable("PROXYGUARD_ADMIN_TOKEN");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            return new AdminToken(fromEnv, "PROXYGUARD_ADMIN_TOKEN");
        }

        var path = Path.Combine(dataDirectory, FileName);
        if (Policy.FilePermissions.CheckPrivateFile(path, "admin token file") is { } refusal)
        {
            throw new UnauthorizedAccessException(refusal);
        }

        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path).Trim();
            if (existing.Length >= 16)
            {
                return new AdminToken(existing, path);
            }
        }

        Policy.FilePermissions.CreatePrivateDirectory(dataDirectory);
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        CertificateAuthority.WritePrivateFile(path, token + "\n");
        return new AdminToken(token, path);
    }

    /// <summary>Constant-time check of an <c>Authorization: Bearer</c> header value.</summary>
    public bool Verify(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Compare fixed-length digests so that neither the content nor the length of the token leaks through timing.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[7..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, _tokenHash);
    }
}
