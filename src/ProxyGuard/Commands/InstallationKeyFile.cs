using System.Security.Cryptography;
using ProxyGuard.Policy;

namespace ProxyGuard.Commands;

/// <summary>
/// Reads the installation key that <c>proxyguard run</c> keeps in its data directory (derived placeholders are
/// keyed with it), without ever creating one: only the proxy creates it, so a command run with another
/// <c>--data-dir</c> (or from another directory) cannot silently invent placeholders the proxy does not know.
/// </summary>
internal static class InstallationKeyFile
{
    public const string FileName = "installation.key";

    /// <summary>The key, or <c>null</c> and a one-line reason that says where it looked.</summary>
    public static byte[]? TryRead(string dataDirectory, out string problem)
    {
        var path = Path.GetFullPath(Path.Combine(dataDirectory, FileName));
        problem = string.Empty;
        if (!File.Exists(path))
        {
            problem = $"no installation key at {path}: derived placeholders come from the key the proxy creates in its data directory " +
                      "on first start; pass the proxy's --data-dir (its start banner prints the full env command), or start the proxy once";
            return null;
        }

        if (FilePermissions.CheckPrivateFile(path, "installation key") is { } refusal)
        {
            problem = refusal;
            return null;
        }

        try
        {
            var key = Convert.FromHexString(File.ReadAllText(path).Trim());
            if (key.Length >= 16)
            {
                return key;
            }
        }
        catch (FormatException)
        {
            // reported below
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            problem = $"cannot read the installation key {path}: {RunCommand.OneLine(ex.Message)}";
            return null;
        }

        problem = $"{path} is not an installation key (expected at least 32 hex digits); the proxy replaces it on its next start";
        return null;
    }

    /// <summary>
    /// For <c>policy explain</c>: the proxy's key when it exists; otherwise a throw-away key (nothing is written),
    /// with a note on stderr that derived placeholders shown or matched are not the proxy's.
    /// </summary>
    public static byte[] ReadOrEphemeral(string dataDirectory, bool derivesPlaceholders)
    {
        if (TryRead(dataDirectory, out var problem) is { } key)
        {
            return key;
        }

        if (derivesPlaceholders)
        {
            Console.Error.WriteLine($"proxyguard: note: {problem}; using a temporary key, so derived placeholders are not the proxy's");
        }

        return RandomNumberGenerator.GetBytes(32);
    }
}
