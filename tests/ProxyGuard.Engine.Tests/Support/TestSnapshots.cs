using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Tests.Support;

/// <summary>Builds a <see cref="ProxySnapshot"/> from a small YAML policy, as <c>policy explain</c> does.</summary>
internal static class TestSnapshots
{
    /// <summary>The real value behind <see cref="ApiPlaceholder"/> (never what the sandbox should hold).</summary>
    public const string ApiReal = "Rv7q2LmZx9WkTp4sNc8Hd3Jf";

    public const string ApiPlaceholder = "PG_TEST_API_PLACEHOLDER_0001";

    public const string BodyReal = "Bq5nXw8YzK2rLm6TvP9cHs4D";

    public const string BodyPlaceholder = "PG_TEST_BODY_PLACEHOLDER_0002";

    /// <summary>A placeholder whose secret cannot be resolved.</summary>
    public const string MissingPlaceholder = "PG_TEST_MISSING_PLACEHOLDER_0003";

    public const string BoundHost = "api.example.com";

    /// <summary>A token the custom deny content rule finds.</summary>
    public const string AcmeToken = "acme_0123456789abcdef0123456789abcdef";

    /// <summary>A token the custom redact content rule rewrites.</summary>
    public const string RedactToken = "redactme_abcd1234";

    public static readonly byte[] InstallationKey = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    public static string PolicyYaml(string mode = "enforce", string scan = "[headers, query, body]") => $$"""
        version: 1
        mode: {{mode}}
        default: deny
        rules:
          - name: admin-deny
            hosts: [api.example.com]
            paths: ["/admin/**"]
            action: deny
          - name: api-all
            hosts: [api.example.com]
            action: allow
          - name: other-all
            hosts: [other.example.org]
            action: allow
          - name: plain-read
            hosts: [plain.example.net]
            ports: [80]
            methods: [GET, POST]
            action: allow
        content:
          builtin: none
          scan: {{scan}}
          rules:
            - name: acme-token
              pattern: 'acme_[a-z0-9]{32}'
              action: deny
            - name: redact-token
              pattern: 'redactme_[a-z0-9]{8}'
              action: redact
        secrets:
          - name: api
            value: env:PG_TEST_API
            placeholder: {{ApiPlaceholder}}
            hosts: [api.example.com, plain.example.net]
            in: [headers, query]
          - name: bodysecret
            value: env:PG_TEST_BODY
            placeholder: {{BodyPlaceholder}}
            hosts: [api.example.com]
            in: [body]
          - name: missing
            value: env:PG_TEST_MISSING
            placeholder: {{MissingPlaceholder}}
            hosts: [api.example.com]
        """;

    public static CompiledPolicy Load(string yaml)
    {
        var result = PolicyLoader.LoadText(yaml, "test-policy.yaml");
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        return result.Policy!;
    }

    public static ProxySnapshot Build(string yaml, params (string Name, string Value)[] extra)
    {
        var values = new Dictionary<string, string>
        {
            ["PG_TEST_API"] = ApiReal,
            ["PG_TEST_BODY"] = BodyReal,
        };
        foreach (var (name, value) in extra)
        {
            values[name] = value;
        }

        return SnapshotBuilder.BuildAsync(Load(yaml), new FakeSecretProvider(values), InstallationKey, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>The default test policy in enforce mode (built once).</summary>
    public static ProxySnapshot Enforce { get; } = Build(PolicyYaml());

    /// <summary>The default test policy in audit mode.</summary>
    public static ProxySnapshot AuditMode { get; } = Build(PolicyYaml("audit"));
}
