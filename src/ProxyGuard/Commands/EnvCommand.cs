using System.CommandLine;
using System.Text;
using System.Text.Json;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;

namespace ProxyGuard.Commands;

/// <summary>
/// <c>proxyguard env</c>: what a sandbox needs: proxy variables, CA bundle variables for common
/// clients, and each secret's placeholder under its <c>sandbox_env</c> name. Never a real secret.
/// </summary>
internal static class EnvCommand
{
    /// <summary>Clients that read a CA file that replaces the system roots get the combined bundle.</summary>
    internal static readonly string[] BundleVariables =
    [
        "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT", "NPM_CONFIG_CAFILE", "AWS_CA_BUNDLE",
    ];

    private static readonly string[] SystemBundles =
    [
        "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem",
    ];

    public static Command Create()
    {
        var policy = new Option<string>("--policy") { Description = "Policy file (for secret placeholders).", DefaultValueFactory = _ => "policies/default.yaml" };
        var proxy = new Option<string>("--proxy") { Description = "Proxy URL the sandbox uses.", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var format = new Option<string>("--format") { Description = "sh | dotenv | json", DefaultValueFactory = _ => "sh" };
        format.AcceptOnlyFromAmong("sh", "dotenv", "json");
        var caDir = new Option<string>("--ca-dir") { Description = "CA directory.", DefaultValueFactory = _ => "certs-dev" };
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory (placeholder key).", DefaultValueFactory = _ => ".proxyguard" };

        var command = new Command("env", "Print what a sandbox needs: proxy, CA and placeholder variables.") { policy, proxy, format, caDir, dataDir };
        command.SetAction(parse =>
        {
            try
            {
                var variables = Build(parse.GetValue(policy)!, parse.GetValue(proxy)!, parse.GetValue(caDir)!, parse.GetValue(dataDir)!);
                Console.Write(Render(variables, parse.GetValue(format)!));
                return ExitCodes.Ok;
            }
            catch (EnvException ex)
            {
                Console.Error.WriteLine("proxyguard: " + ex.Message);
                return ExitCodes.Failed;
            }
        });
        return command;
    }

    internal static List<KeyValuePair<string, string>> Build(string policyPath, string proxyUrl, string caDirectory, string dataDirectory)
    {
        CertificateAuthority ca;
        try
        {
            ca = CertificateAuthority.LoadOrCreate(caDirectory, out _);
        }
        catch (CertificateAuthorityException ex)
        {
            throw new EnvException(ex.Message);
        }

        using (ca)
        {
            var caPath = Path.GetFullPath(ca.CertificatePath);
            var bundlePath = Path.GetFullPath(Path.Combine(caDirectory, "bundle.pem"));
            WriteBundle(bundlePath, ca.ExportCertificatePem());

            var vars = new List<KeyValuePair<string, string>>
            {
                new("HTTP_PROXY", proxyUrl),
                new("HTTPS_PROXY", proxyUrl),
                new("http_proxy", proxyUrl),
                new("https_proxy", proxyUrl),
                new("NO_PROXY", string.Empty),
                new("no_proxy", string.Empty),
                new("NODE_USE_ENV_PROXY", "1"),
                new("NODE_EXTRA_CA_CERTS", caPath),
                new("PROXYGUARD_CA_CERT", caPath),
                new("PROXYGUARD_SPKI_SHA256", ca.LeafSpkiSha256Base64()),
            };
            vars.AddRange(BundleVariables.Select(v => new KeyValuePair<string, string>(v, bundlePath)));

            if (File.Exists(policyPath))
            {
                var loaded = PolicyLoader.LoadFile(policyPath);
                if (!loaded.Success)
                {
                    throw new EnvException($"the policy is invalid: {loaded.Diagnostics[0]}");
                }

                FilePermissions.CreatePrivateDirectory(dataDirectory);
                var key = SnapshotBuilder.LoadInstallationKey(dataDirectory);
                foreach (var secret in loaded.Policy!.Secrets)
                {
                    if (secret.SandboxEnv is { Length: > 0 } name)
                    {
                        vars.Add(new(name, SnapshotBuilder.PlaceholderFor(secret, key)));
                    }
                }
            }

            return vars;
        }
    }

    private static void WriteBundle(string path, string caPem)
    {
        var sb = new StringBuilder();
        var system = SystemBundles.FirstOrDefault(File.Exists);
        if (system is not null)
        {
            sb.Append(File.ReadAllText(system)).Append('\n');
        }

        sb.Append("# ProxyGuard interception CA\n").Append(caPem);
        File.WriteAllText(path, sb.ToString());
    }

    /// <summary>
    /// Renders the variables so that every format is safe to source or <c>eval</c>: names must be
    /// shell identifiers (anything else is an error); <c>sh</c> single-quotes every value;
    /// <c>dotenv</c> writes a value bare when it holds only <c>A-Z a-z 0-9 _ . / : @ % + , = -</c> and
    /// single-quotes it otherwise (a <c>'</c> becomes <c>'\''</c>); a value with a line break is an error in every
    /// format (line-based readers such as <c>docker --env-file</c> would read its second line as another variable);
    /// <c>json</c> is one object in which a repeated name keeps its last value (as sourcing does),
    /// at the position of its first occurrence.
    /// </summary>
    internal static string Render(List<KeyValuePair<string, string>> vars, string format)
    {
        foreach (var (k, _) in vars)
        {
            if (!IsShellName(k))
            {
                throw new EnvException($"'{Printable(k)}' is not a valid environment variable name");
            }
        }

        foreach (var (k, v) in vars)
        {
            if (v.AsSpan().IndexOfAny('\n', '\r') >= 0)
            {
                throw new EnvException($"the value of {k} contains a line break ('{Printable(v)}'); no env format can carry it safely");
            }
        }

        var sb = new StringBuilder();
        switch (format)
        {
            case "json":
                var merged = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var (k, v) in vars)
                {
                    merged[k] = v;
                }

                return JsonSerializer.Serialize(merged, new JsonSerializerOptions { WriteIndented = true }) + "\n";
            case "dotenv":
                foreach (var (k, v) in vars)
                {
                    sb.Append(k).Append('=').Append(IsBareSafe(v) ? v : ShellQuote(v)).Append('\n');
                }

                return sb.ToString();
            default:
                foreach (var (k, v) in vars)
                {
                    sb.Append("export ").Append(k).Append('=').Append(ShellQuote(v)).Append('\n');
                }

                return sb.ToString();
        }
    }

    internal static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static bool IsBareSafe(string value)
    {
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '/' or ':' or '@' or '%' or '+' or ',' or '=' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsShellName(string name)
    {
        if (name.Length == 0 || char.IsAsciiDigit(name[0]))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_'))
            {
                return false;
            }
        }

        return true;
    }

    private static string Printable(string s) => string.Concat(s.Select(c => c < 0x20 || c == 0x7F ? '?' : c));

    private sealed class EnvException(string message) : Exception(message);
}
