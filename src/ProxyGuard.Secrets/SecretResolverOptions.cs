namespace ProxyGuard.Secrets;

/// <summary>Settings of a <see cref="SecretResolver"/>.</summary>
public sealed class SecretResolverOptions
{
    /// <summary>Environment lookup for <c>env:</c> references and Vault defaults.</summary>
    public Func<string, string?> Environment { get; init; } = System.Environment.GetEnvironmentVariable;

    /// <summary>Vault / OpenBao connection. Null: read from VAULT_ADDR, VAULT_TOKEN, VAULT_TOKEN_FILE,
    /// VAULT_NAMESPACE and VAULT_CACERT through <see cref="Environment"/>.</summary>
    public VaultOptions? Vault { get; init; }

    /// <summary>How long a Vault value is used before it must be fetched again (default 5 minutes).
    /// A background refresh starts at 3/4 of it.</summary>
    public TimeSpan CacheTtl { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long past <see cref="CacheTtl"/> an old value is still served while Vault cannot be
    /// reached (default 1 minute). After TTL + grace the secret fails closed.</summary>
    public TimeSpan StaleGrace { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Minimum time between two background refresh attempts after a failure (default 5 s).</summary>
    public TimeSpan RetryInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Timeout of one Vault HTTP request (default 5 seconds, measured in real time).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Clock for cache ages (tests pass a fake one).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Previous values of rotated secrets, kept across policy reloads (default: a new
    /// <see cref="SecretHistory"/> with a 24 h grace, 4 values per secret).
    /// </summary>
    public SecretHistory? History { get; init; }

    /// <summary>Largest <c>file:</c> secret accepted (default 64 KiB).</summary>
    public int MaxFileBytes { get; init; } = 64 * 1024;

    /// <summary>Variable overriding <see cref="CacheTtl"/> (seconds), read by <see cref="FromEnvironment"/>.</summary>
    public const string CacheTtlVariable = "PROXYGUARD_SECRET_CACHE_TTL";

    /// <summary>Variable overriding <see cref="StaleGrace"/> (seconds), read by <see cref="FromEnvironment"/>.</summary>
    public const string StaleGraceVariable = "PROXYGUARD_SECRET_STALE_GRACE";

    /// <summary>
    /// Defaults, with <see cref="CacheTtl"/> and <see cref="StaleGrace"/> taken from
    /// PROXYGUARD_SECRET_CACHE_TTL / PROXYGUARD_SECRET_STALE_GRACE (seconds) when set, and the
    /// rotation grace of <see cref="History"/> from PROXYGUARD_SECRET_ROTATION_GRACE (seconds).
    /// </summary>
    /// <exception cref="ArgumentException">A variable is set but is not a number of seconds in range.</exception>
    public static SecretResolverOptions FromEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= System.Environment.GetEnvironmentVariable;
        var defaults = new SecretResolverOptions();
        return new SecretResolverOptions
        {
            Environment = environment,
            CacheTtl = Seconds(environment, CacheTtlVariable, minimum: 1) ?? defaults.CacheTtl,
            StaleGrace = Seconds(environment, StaleGraceVariable, minimum: 0) ?? defaults.StaleGrace,
            History = SecretHistory.FromEnvironment(environment),
        };
    }

    private static TimeSpan? Seconds(Func<string, string?> environment, string name, double minimum)
    {
        var text = environment(name);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!double.TryParse(text.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
            || double.IsNaN(seconds) || seconds < minimum || seconds > 7 * 24 * 3600)
        {
            throw new ArgumentException($"{name} must be a number of seconds between {minimum} and 604800 (got '{text.Trim()}').");
        }

        return TimeSpan.FromSeconds(seconds);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"SecretResolverOptions {{ Vault = {Vault?.ToString() ?? "(from environment)"}, CacheTtl = {CacheTtl}, StaleGrace = {StaleGrace} }}";
}

/// <summary>HashiCorp Vault / OpenBao connection settings (KV v2 over HTTP).</summary>
public sealed class VaultOptions
{
    /// <summary>Base address, e.g. <c>https://vault.example.com:8200</c> (VAULT_ADDR). Plain http is
    /// accepted only toward loopback unless <see cref="AllowInsecureHttp"/>.</summary>
    public Uri? Address { get; init; }

    /// <summary>The token (VAULT_TOKEN). Takes precedence over <see cref="TokenFile"/>.</summary>
    public string? Token { get; init; }

    /// <summary>A file holding the token (VAULT_TOKEN_FILE), e.g. written by Vault Agent; re-read on
    /// every request so rotation works; refused if group/other-writable.</summary>
    public string? TokenFile { get; init; }

    /// <summary>Enterprise / OpenBao namespace, sent as X-Vault-Namespace (VAULT_NAMESPACE).</summary>
    public string? Namespace { get; init; }

    /// <summary>PEM file of CA certificates trusted for the Vault server (VAULT_CACERT), in addition to
    /// the system roots.</summary>
    public string? CaFile { get; init; }

    /// <summary>Allow plain http toward non-loopback addresses (the token would travel in clear).</summary>
    public bool AllowInsecureHttp { get; init; }

    /// <summary>Reads the standard VAULT_* variables.</summary>
    public static VaultOptions FromEnvironment(Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var address = NullIfEmpty(environment("VAULT_ADDR"));
        return new VaultOptions
        {
            Address = address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri) ? uri : null,
            InvalidAddress = address is not null && !Uri.TryCreate(address, UriKind.Absolute, out _) ? address : null,
            Token = NullIfEmpty(environment("VAULT_TOKEN")),
            TokenFile = NullIfEmpty(environment("VAULT_TOKEN_FILE")),
            Namespace = NullIfEmpty(environment("VAULT_NAMESPACE")),
            CaFile = NullIfEmpty(environment("VAULT_CACERT")),
        };
    }

    internal string? InvalidAddress { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"VaultOptions {{ Address = {Address}, Token = {(Token is null ? "(none)" : SecretValue.Redacted)}, TokenFile = {TokenFile}, Namespace = {Namespace}, CaFile = {CaFile} }}";

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
