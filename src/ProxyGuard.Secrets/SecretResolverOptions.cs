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

    /// <summary>Largest <c>file:</c> secret accepted (default 64 KiB).</summary>
    public int MaxFileBytes { get; init; } = 64 * 1024;

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
