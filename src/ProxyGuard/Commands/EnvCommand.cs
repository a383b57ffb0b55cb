using System.CommandLine;
using System.CommandLine.Parsing;
using System.Security.Cryptography;
using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;
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

    /// <summary>
    /// What <c>sh</c> output is when <c>env</c> fails: a statement that fails, so that <c>eval "$(proxyguard env)"</c>
    /// (whose status is that of the last statement it ran, not of the command substitution) fails too and a
    /// <c>set -e</c> script or an <c>&amp;&amp;</c> chain stops instead of running an agent without the proxy.
    /// </summary>
    internal const string FailedShellStatement = "false\n";

    /// <summary>True when <paramref name="parse"/> is an <c>env</c> command line whose output would be <c>sh</c> (the default).</summary>
    internal static bool WantsShellOutput(ParseResult parse)
    {
        if (parse.CommandResult.Command.Name != "env" || parse.CommandResult.Parent is not CommandResult { Parent: null })
        {
            return false;
        }

        var format = parse.CommandResult.Children.OfType<OptionResult>().FirstOrDefault(o => o.Option.Name == "--format");
        return format is null || format.Tokens.Count == 0 || format.Tokens[^1].Value is not ("dotenv" or "json");
    }

    public static Command Create()
    {
        var policy = new Option<string>("--policy") { Description = "Policy file (for secret placeholders).", DefaultValueFactory = _ => "policies/default.yaml" }.NotEmpty();
        var proxy = new Option<string>("--proxy") { Description = "Proxy the sandbox uses: http://ADDR:PORT or ADDR:PORT.", DefaultValueFactory = _ => "http://127.0.0.1:8080" }.NotEmpty();
        var format = new Option<string>("--format") { Description = "sh | dotenv | json", DefaultValueFactory = _ => "sh" };
        format.AcceptOnlyFromAmong("sh", "dotenv", "json");
        var caDir = new Option<string>("--ca-dir") { Description = "The proxy's CA directory (never created here).", DefaultValueFactory = _ => "certs-dev" }.NotEmpty();
        var dataDir = new Option<string>("--data-dir") { Description = "The proxy's data directory (installation key for derived placeholders; never created here).", DefaultValueFactory = _ => ".proxyguard" }.NotEmpty();

        proxy.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && ProxyProblem(result.Tokens[^1].Value) is { } problem)
            {
                result.AddError(problem);
            }
        });

        var command = new Command("env", "Print what a sandbox needs: proxy, CA and placeholder variables.") { policy, proxy, format, caDir, dataDir };
        command.SetAction(parse =>
        {
            var fmt = parse.GetValue(format)!;
            try
            {
                var policyGiven = parse.GetResult(policy) is { Implicit: false };
                var variables = Build(parse.GetValue(policy)!, policyGiven, ProxyUrl(parse.GetValue(proxy)!), parse.GetValue(caDir)!, parse.GetValue(dataDir)!);
                Console.Write(Render(variables, fmt));
                return ExitCodes.Ok;
            }
            catch (Exception ex) when (ex is EnvException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                Console.Error.WriteLine("proxyguard: env: " + RunCommand.OneLine(ex.Message));
                if (fmt == "sh")
                {
                    Console.Write(FailedShellStatement);
                }

                return ExitCodes.Failed;
            }
        });
        return command;
    }

    /// <summary>
    /// Why <paramref name="value"/> cannot be the proxy of a sandbox, or null. Clients speak plain HTTP to the proxy
    /// (TLS travels inside CONNECT) over TCP: an https:// URL, another scheme, or a unix: socket would give the
    /// sandbox variables no client can use.
    /// </summary>
    internal static string? ProxyProblem(string value)
    {
        var text = value.Trim();
        if (text.StartsWith("unix:", StringComparison.OrdinalIgnoreCase))
        {
            return "--proxy: sandboxes reach the proxy over TCP and HTTP_PROXY cannot name a unix socket; give http://ADDR:PORT " +
                   "(a TCP listener, or a bridge to the socket as in samples/bubblewrap)";
        }

        var separator = text.IndexOf("://", StringComparison.Ordinal);
        if (separator < 0)
        {
            return null;
        }

        var scheme = text[..separator];
        return scheme.Equals("http", StringComparison.OrdinalIgnoreCase)
            ? null
            : scheme.Equals("https", StringComparison.OrdinalIgnoreCase)
                ? $"--proxy: the proxy listener speaks plain HTTP (clients send TLS inside CONNECT); use http://{OptionChecks.Shown(text[(separator + 3)..])}"
                : $"--proxy: expected http://ADDR:PORT or ADDR:PORT, got '{OptionChecks.Shown(text)}'";
    }

    /// <summary>The proxy URL for the variables: <c>ADDR:PORT</c> (what <c>run --listen</c> takes) becomes <c>http://ADDR:PORT</c>.</summary>
    internal static string ProxyUrl(string value) =>
        value.Contains("://", StringComparison.Ordinal) || value.StartsWith("unix:", StringComparison.Ordinal) ? value : "http://" + value;

    /// <summary>
    /// The variables, from an existing CA and (for derived placeholders) the proxy's existing installation key.
    /// Creates no CA and no key: a missing one is an error that says where it looked and how to get one.
    /// </summary>
    internal static List<KeyValuePair<string, string>> Build(string policyPath, bool policyGiven, string proxyUrl, string caDirectory, string dataDirectory)
    {
        if (!CertificateAuthority.Exists(caDirectory))
        {
            var dir = Path.GetFullPath(caDirectory);
            throw new EnvException(
                $"no CA in {dir} (looked for {CertificateAuthority.CertificateFileName} and {CertificateAuthority.KeyFileName}): " +
                $"pass the proxy's --ca-dir, or create one with 'proxyguard ca init --dir {Banner.Quote(dir)}' (the proxy also creates it on first start)");
        }

        CertificateAuthority ca;
        try
        {
            ca = CertificateAuthority.Load(caDirectory);
        }
        catch (CertificateAuthorityException ex)
        {
            throw new EnvException(ex.Message);
        }

        using (ca)
        {
            var caPath = Path.GetFullPath(ca.CertificatePath);
            var bundlePath = Path.GetFullPath(Path.Combine(caDirectory, BundleFileName));
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

            if (!File.Exists(policyPath))
            {
                if (policyGiven)
                {
                    throw new EnvException($"the policy file {Path.GetFullPath(policyPath)} does not exist");
                }

                Console.Error.WriteLine($"proxyguard: env: no policy at {Path.GetFullPath(policyPath)} (use --policy FILE): printing no placeholder variables");
            }
            else
            {
                var loaded = PolicyLoader.LoadFile(policyPath, PolicyCommands.LoadOptions(null));
                if (!loaded.Success)
                {
                    foreach (var diagnostic in loaded.Diagnostics)
                    {
                        Console.Error.WriteLine(diagnostic.ToString());
                    }

                    throw new EnvException($"the policy {policyPath} is invalid ({loaded.Diagnostics.Count} problem{(loaded.Diagnostics.Count == 1 ? string.Empty : "s")} above); printing nothing");
                }

                var exported = loaded.Policy!.Secrets.Where(s => s.SandboxEnv is { Length: > 0 }).ToList();
                byte[]? key = null;
                if (exported.Any(s => s.Placeholder is null))
                {
                    key = InstallationKeyFile.TryRead(dataDirectory, out var problem) ?? throw new EnvException(problem);
                }

                foreach (var secret in exported)
                {
                    vars.Add(new(secret.SandboxEnv!, SnapshotBuilder.PlaceholderFor(secret, key ?? [])));
                }
            }

            // Java: a PKCS12 truststore beside the CA, and the proxy as system properties (JAVA_TOOL_OPTIONS is read by
            // every JVM). Omitted, with a note, when the proxy is a unix socket or a path holds whitespace (the JVM
            // splits JAVA_TOOL_OPTIONS at spaces).
            var trustStorePath = Path.GetFullPath(Path.Combine(caDirectory, TrustStoreFileName));
            var javaOptions = JavaToolOptions(proxyUrl, trustStorePath);
            if (javaOptions is not null)
            {
                vars.Add(new("JAVA_TOOL_OPTIONS", javaOptions));
            }

            // Written last, once everything else succeeded: the files env writes, next to the CA they were made from.
            WriteBundle(bundlePath, ca.ExportCertificatePem());
            if (javaOptions is not null)
            {
                WriteTrustStore(trustStorePath, ca.Certificate);
            }

            return vars;
        }
    }

    /// <summary>The Java truststore (PKCS12, password <see cref="TrustStorePassword"/>) holding the ProxyGuard CA.</summary>
    internal const string TrustStoreFileName = "truststore.p12";

    /// <summary>Java's default truststore password; it protects nothing secret (the store holds one public certificate).</summary>
    internal const string TrustStorePassword = "changeit";

    /// <summary>
    /// <c>-Djavax.net.ssl.trustStore=… -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=changeit
    /// -Dhttps.proxyHost=… -Dhttps.proxyPort=… -Dhttp.proxyHost=… -Dhttp.proxyPort=… -Dhttp.nonProxyHosts=</c>, or null
    /// (with a note on stderr) when the JVM cannot be pointed at this proxy through JAVA_TOOL_OPTIONS.
    /// </summary>
    internal static string? JavaToolOptions(string proxyUrl, string trustStorePath)
    {
        if (!Uri.TryCreate(proxyUrl, UriKind.Absolute, out var proxy) || proxy.Scheme != "http" || proxy.Host.Length == 0)
        {
            Console.Error.WriteLine($"proxyguard: env: JAVA_TOOL_OPTIONS not printed: Java needs an http://HOST:PORT proxy, not {proxyUrl}");
            return null;
        }

        if (trustStorePath.Any(char.IsWhiteSpace))
        {
            Console.Error.WriteLine($"proxyguard: env: JAVA_TOOL_OPTIONS not printed: the truststore path '{trustStorePath}' holds whitespace, which the JVM splits options at");
            return null;
        }

        var host = proxy.Host; // IPv6 stays in brackets, as Java's proxyHost takes it
        var port = proxy.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // An empty http.nonProxyHosts replaces Java's default list (localhost|127.*|[::1]|...), like NO_PROXY='' above.
        return $"-Djavax.net.ssl.trustStore={trustStorePath} -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword={TrustStorePassword} " +
               $"-Dhttps.proxyHost={host} -Dhttps.proxyPort={port} -Dhttp.proxyHost={host} -Dhttp.proxyPort={port} -Dhttp.nonProxyHosts=";
    }

    /// <summary>
    /// Writes the CA as a trusted-certificate entry (alias <c>proxyguard-ca</c>): the bag carries Java's trusted-key-usage
    /// attribute (OID 2.16.840.1.113894.746875.1.1 = anyExtendedKeyUsage), without which Java's PKCS12 store ignores a
    /// certificate that has no private key. Written to a temporary file and moved, so a reader never sees half a store.
    /// </summary>
    private static void WriteTrustStore(string path, X509Certificate2 ca)
    {
        var safe = new Pkcs12SafeContents();
        var bag = safe.AddCertificate(ca);
        bag.Attributes.Add(new CryptographicAttributeObject(new Oid(JavaTrustedKeyUsageOid),
            new AsnEncodedDataCollection(new AsnEncodedData(new Oid(JavaTrustedKeyUsageOid), AnyExtendedKeyUsageDer))));
        bag.Attributes.Add(new Pkcs9AttributeObject(new Oid("1.2.840.113549.1.9.20"), BmpString("proxyguard-ca")));
        var builder = new Pkcs12Builder();
        builder.AddSafeContentsUnencrypted(safe);
        builder.SealWithMac(TrustStorePassword, HashAlgorithmName.SHA256, 10_000);
        var temp = path + ".tmp-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            File.WriteAllBytes(temp, builder.Encode());
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            File.Delete(temp);
            throw new EnvException($"cannot write the Java truststore {path}: {RunCommand.OneLine(ex.Message)}");
        }
    }

    private const string JavaTrustedKeyUsageOid = "2.16.840.1.113894.746875.1.1";

    /// <summary>DER of the OID 2.5.29.37.0 (anyExtendedKeyUsage).</summary>
    private static readonly byte[] AnyExtendedKeyUsageDer = [0x06, 0x04, 0x55, 0x1D, 0x25, 0x00];

    private static byte[] BmpString(string text)
    {
        var value = Encoding.BigEndianUnicode.GetBytes(text);
        return [0x1E, (byte)value.Length, .. value];
    }

    /// <summary>The combined trust file (system roots + the ProxyGuard CA) that the bundle variables name.</summary>
    internal const string BundleFileName = "bundle.pem";

    private static void WriteBundle(string path, string caPem)
    {
        var sb = new StringBuilder();
        var system = SystemBundles.FirstOrDefault(File.Exists);
        if (system is not null)
        {
            sb.Append(File.ReadAllText(system)).Append('\n');
        }

        sb.Append("# ProxyGuard interception CA\n").Append(caPem);
        var text = sb.ToString();
        try
        {
            if (!File.Exists(path) || File.ReadAllText(path) != text)
            {
                File.WriteAllText(path, text);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new EnvException($"cannot write the CA bundle {path}: {RunCommand.OneLine(ex.Message)}");
        }
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
