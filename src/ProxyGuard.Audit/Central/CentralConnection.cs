using System.Security.Cryptography;
using Npgsql;

namespace ProxyGuard.Audit.Central;

/// <summary>
/// Turns <c>postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]</c> into an Npgsql connection string and a display
/// form without the password. The password comes from the URL, else <c>PGPASSWORD</c>, else a password file.
/// </summary>
public static class CentralConnection
{
    public const string ReplicaIdFileName = "replica.id";

    public const string IncarnationFileName = "replica.incarnation";

    private static readonly Dictionary<string, string> QueryKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        ["sslmode"] = "SSL Mode",
        ["application_name"] = "Application Name",
        ["connect_timeout"] = "Timeout",
        ["sslrootcert"] = "Root Certificate",
        ["sslcert"] = "SSL Certificate",
        ["sslkey"] = "SSL Key",
    };

    /// <summary>Parses the URL; throws <see cref="ArgumentException"/> (naming <paramref name="option"/>, never the password).</summary>
    public static (string ConnectionString, string Display) Parse(string url, string? passwordFile, Func<string, string?> environment, string option)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("postgres" or "postgresql") || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"{option}: expected postgres://USER@HOST[:PORT]/DATABASE");
        }

        var userInfo = uri.UserInfo;
        var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
        var user = Uri.UnescapeDataString(colon < 0 ? userInfo : userInfo[..colon]);
        var password = colon < 0 ? null : Uri.UnescapeDataString(userInfo[(colon + 1)..]);
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (user.Length == 0 || database.Length == 0 || database.Contains('/', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{option}: expected postgres://USER@HOST[:PORT]/DATABASE (a user and a database are required)");
        }

        if (string.IsNullOrEmpty(password))
        {
            password = environment("PGPASSWORD");
        }

        if (string.IsNullOrEmpty(password) && !string.IsNullOrEmpty(passwordFile))
        {
            try
            {
                password = File.ReadAllText(passwordFile).TrimEnd('\r', '\n');
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"{option}: cannot read the password file {passwordFile}: {ex.Message.ReplaceLineEndings(" ")}", ex);
            }
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host.Trim('[', ']'),
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Username = user,
            Database = database,
        };
        if (!string.IsNullOrEmpty(password))
        {
            builder.Password = password;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
            var value = eq < 0 ? string.Empty : Uri.UnescapeDataString(pair[(eq + 1)..]);
            if (!QueryKeys.TryGetValue(key, out var npgsqlKey))
            {
                throw new ArgumentException($"{option}: unknown parameter '{key}' (supported: {string.Join(", ", QueryKeys.Keys)})");
            }

            try
            {
                builder[npgsqlKey] = value;
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"{option}: bad value for {key}: {ex.Message.ReplaceLineEndings(" ")}", ex);
            }
        }

        var port = builder.Port == 5432 ? string.Empty : ":" + builder.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var host = uri.HostNameType == UriHostNameType.IPv6 ? $"[{builder.Host}]" : builder.Host;
        return (builder.ConnectionString, $"postgres://{Uri.EscapeDataString(user)}@{host}{port}/{Uri.EscapeDataString(database)}");
    }

    /// <summary>
    /// This replica's id: <paramref name="configured"/> when given, else the one stored in the data directory, created
    /// (random, 0600) on first use, so a restarted replica keeps its id and its outbox ships under it.
    /// </summary>
    public static string ReplicaId(string dataDirectory, string? configured)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            return ValidReplicaId(configured, "--replica-id");
        }

        var path = Path.Combine(dataDirectory, ReplicaIdFileName);
        if (File.Exists(path))
        {
            return ValidReplicaId(File.ReadAllText(path).Trim(), path);
        }

        var id = "r-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using var stream = new FileStream(path, options);
            using var writer = new StreamWriter(stream);
            writer.Write(id + "\n");
        }
        catch (IOException) when (File.Exists(path))
        {
            return ValidReplicaId(File.ReadAllText(path).Trim(), path);
        }

        return id;
    }

    /// <summary>
    /// This data directory's incarnation: a random value created (0600) on first use and kept in the data directory.
    /// The central store binds a replica id to the incarnation that registered it, so a new, lost or restored data
    /// directory (or a second live replica) under a known id is refused instead of adopting that id's shipped cursor.
    /// </summary>
    public static string Incarnation(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, IncarnationFileName);
        if (!File.Exists(path))
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            try
            {
                using var stream = new FileStream(path, options);
                using var writer = new StreamWriter(stream);
                writer.Write("i-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)) + "\n");
            }
            catch (IOException) when (File.Exists(path))
            {
                // Created by a concurrent start: read it below.
            }
        }

        var value = File.ReadAllText(path).Trim();
        if (value.Length is < 8 or > 64 || value.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '-')))
        {
            throw new ArgumentException($"{path}: not a replica incarnation; delete the file only if this data directory never shipped under its replica id");
        }

        return value;
    }

    private static string ValidReplicaId(string id, string source)
    {
        if (id.Length is 0 or > 64 || id.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new ArgumentException($"{source}: a replica id is 1-64 characters of letters, digits, '-', '_' and '.'");
        }

        return id;
    }
}
