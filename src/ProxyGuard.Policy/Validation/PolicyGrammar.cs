using System.Text.RegularExpressions;

namespace ProxyGuard.Policy.Validation;

/// <summary>
/// The grammar of names and ids in a policy. Every pattern is anchored with <c>\A</c> and <c>\z</c>: .NET's
/// <c>$</c> also matches before a final newline, so <c>"name\n"</c> would otherwise pass.
/// </summary>
internal static partial class PolicyGrammar
{
    /// <summary>
    /// Variables a secret's <c>sandbox_env</c> may not name (compared case-insensitively): proxy and CA variables that
    /// <c>proxyguard env</c> sets or that redirect a client's trust or traffic, and loader variables.
    /// Keep in step with src/ProxyGuard/Commands/EnvCommand.cs (a test checks it).
    /// </summary>
    public static readonly IReadOnlySet<string> ReservedEnvNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        // Set by `proxyguard env`.
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "NODE_USE_ENV_PROXY", "NODE_EXTRA_CA_CERTS", "PROXYGUARD_CA_CERT", "PROXYGUARD_SPKI_SHA256",
        "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT", "NPM_CONFIG_CAFILE", "AWS_CA_BUNDLE",

        // Redirect traffic or trust.
        "ALL_PROXY", "FTP_PROXY", "SSL_CERT_DIR", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "NODE_TLS_REJECT_UNAUTHORIZED",
        "NPM_CONFIG_PROXY", "NPM_CONFIG_HTTPS_PROXY", "GIT_SSL_NO_VERIFY", "GIT_PROXY_COMMAND", "PYTHONHTTPSVERIFY",

        // Change what a process loads or runs.
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH", "PATH", "NODE_OPTIONS",
        "PYTHONPATH", "PYTHONSTARTUP", "BASH_ENV", "ENV", "IFS", "PERL5OPT", "RUBYOPT", "JAVA_TOOL_OPTIONS", "DOTNET_STARTUP_HOOKS",
    };

    /// <summary>A reserved name (any case), or any name starting with <c>PROXYGUARD_</c>.</summary>
    public static bool IsReservedEnvName(string value) =>
        ReservedEnvNames.Contains(value) || value.StartsWith("PROXYGUARD_", StringComparison.OrdinalIgnoreCase);

    /// <summary>Rule, content-rule and secret names, client ids: 1-64 of letters, digits, '.', '_', '-'; starting with a letter or digit.</summary>
    public static bool IsIdentifier(string value) => Identifier().IsMatch(value);

    public static bool IsDetectorId(string value) => Identifier().IsMatch(value);

    public static bool IsHttpToken(string value) => HttpToken().IsMatch(value);

    public static bool IsPlaceholder(string value) => Placeholder().IsMatch(value);

    /// <summary>A portable environment variable name: <c>[A-Za-z_][A-Za-z0-9_]*</c>, at most 128 characters.</summary>
    public static bool IsEnvName(string value) => EnvName().IsMatch(value);

    [GeneratedRegex(@"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"\A[!#$%&'*+.^_`|~0-9A-Z-]{1,32}\z")]
    private static partial Regex HttpToken();

    [GeneratedRegex(@"\A[A-Za-z0-9_]{16,256}\z")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"\A[A-Za-z_][A-Za-z0-9_]{0,127}\z")]
    private static partial Regex EnvName();
}
