using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>
/// A fake Vault KV v2 server on loopback (token + namespace required) and a proxy whose secrets come
/// from it, with a short cache TTL and grace so that an outage fails closed within seconds.
/// </summary>
public class VaultFixture : OriginFixture
{
    public const string Namespace = "team-e2e";
    public const string SecretPath = "/v1/secret/data/ci/demo";

    public FakeVaultServer Vault { get; } = new();

    public string VaultToken { get; } = "s." + SecretForms.NewValue("vaulttoken");

    public string TokenValue { get; } = SecretForms.NewValue("vault", withSlash: true);

    public string Placeholder => Env["DEMO_TOKEN"];

    /// <summary>Seconds; TTL + grace is how long an outage is tolerated.</summary>
    public virtual double CacheTtlSeconds => 2;

    public virtual double StaleGraceSeconds => 1;

    protected override string Rules => """
        rules:
          - name: origin
            hosts: [localhost, 127.0.0.1, origin.test]
            ports: [{HTTPS}, {HTTP}]
            action: allow
        secrets:
          - name: demo
            value: vault:secret/data/ci/demo#token
            sandbox_env: DEMO_TOKEN
            hosts: [localhost]
            in: [headers, query]
          - name: missing
            value: vault:secret/data/ci/absent#token
            sandbox_env: MISSING_TOKEN
            hosts: [localhost]
        """;

    protected override IDictionary<string, string>? ProxyEnvironment => new Dictionary<string, string>
    {
        ["VAULT_ADDR"] = Vault.Address.ToString().TrimEnd('/'),
        ["VAULT_TOKEN"] = VaultToken,
        ["VAULT_NAMESPACE"] = Namespace,
        ["PROXYGUARD_SECRET_CACHE_TTL"] = CacheTtlSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["PROXYGUARD_SECRET_STALE_GRACE"] = StaleGraceSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["PROXYGUARD_LOG_LEVEL"] = "Debug",
    };

    public IEnumerable<(string Name, string Value)> RealValues => [("demo", TokenValue), ("vault-token", VaultToken)];

    public override async Task InitializeAsync()
    {
        Vault.RequiredToken = VaultToken;
        Vault.RequiredNamespace = Namespace;
        Vault.Secrets[SecretPath] = $"{{\"token\":\"{TokenValue}\",\"user\":\"ci\"}}";
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Vault.DisposeAsync();
    }
}
