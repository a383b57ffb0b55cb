namespace ProxyGuard.Policy.Tests;

/// <summary>
/// Strict name grammar (issue 20 class 6): no name or id accepts a trailing newline (.NET's '$' matches before a final
/// "\n"), and a secret's sandbox_env may not name a reserved variable in any case.
/// </summary>
public sealed class NameGrammarTests
{
    private const string Secret = """
        secrets:
          - name: api
            value: env:API_KEY
            hosts: [api.example.com]
            sandbox_env: {0}
        """;

    public static TheoryData<string, string> TrailingNewlines => new()
    {
        { "rule name", "version: 1\nrules:\n  - {name: \"r\\n\", hosts: [a.example.com], action: allow}\n" },
        { "client id", "version: 1\nclients:\n  - {id: \"agent\\n\", token: env:T}\n" },
        { "secret name", "version: 1\nsecrets:\n  - {name: \"s\\n\", value: env:S, hosts: [a.example.com]}\n" },
        { "content rule name", "version: 1\ncontent:\n  rules:\n    - {name: \"c\\n\", pattern: 'x[0-9]+', action: log}\n" },
        { "detector id", "version: 1\ncontent:\n  builtin: [\"aws-access-key\\n\"]\n" },
        { "exempt detector id", "version: 1\ncontent:\n  exempt:\n    - {detectors: [\"aws-access-key\\n\"], hosts: [a.example.com]}\n" },
        { "sandbox_env", "version: 1\nsecrets:\n  - {name: s, value: env:S, hosts: [a.example.com], sandbox_env: \"API_KEY\\n\"}\n" },
        { "placeholder", "version: 1\nsecrets:\n  - {name: s, value: env:S, hosts: [a.example.com], placeholder: \"PLACEHOLDER_0123456789\\n\"}\n" },
        { "env: reference", "version: 1\nclients:\n  - {id: agent, token: \"env:TOKEN\\n\"}\n" },
        { "vault: reference", "version: 1\nclients:\n  - {id: agent, token: \"vault:secret/data/x#f\\n\"}\n" },
        { "method", "version: 1\nrules:\n  - {name: r, hosts: [a.example.com], methods: [\"GET\\n\"], action: allow}\n" },
        { "max_body", "version: 1\ncontent:\n  max_body: \"8MiB\\n\"\n" },
        { "block scalar name", "version: 1\nrules:\n  - name: |\n      r\n    hosts: [a.example.com]\n    action: allow\n" },
    };

    [Theory]
    [MemberData(nameof(TrailingNewlines))]
    public void ATrailingNewlineIsRefused(string what, string yaml)
    {
        var errors = TestPolicies.Errors(yaml);
        Assert.True(errors.Count == 1, $"{what}: {string.Join("\n", errors)}");
        Assert.True(errors[0].Line >= 3, errors[0].ToString());
    }

    [Fact]
    public void TheSameNamesWithoutTheNewlineAreAccepted()
    {
        foreach (var (_, yaml) in TrailingNewlines.Select(row => ((string)row[0], (string)row[1])))
        {
            var fixedYaml = yaml.Replace("\\n\"", "\"", StringComparison.Ordinal).Replace("name: |\n", "name: >-\n", StringComparison.Ordinal);
            TestPolicies.Load(fixedYaml);
        }
    }

    [Fact]
    public void TheNewlineIsShownEscapedInTheDiagnostic()
    {
        var error = Assert.Single(TestPolicies.Errors("version: 1\nrules:\n  - {name: \"r\\n\", hosts: [a.example.com], action: allow}\n"));
        Assert.Contains("'r\\n'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void EveryDiagnosticLineStaysOneLine()
    {
        var errors = TestPolicies.Errors("version: 1\nrules:\n  - {name: r, hosts: [a.example.com], methods: [\"GET\\n\\u001b[2J\"], action: allow}\n");
        var line = Assert.Single(errors).ToString();
        Assert.DoesNotContain('\n', line);
        Assert.DoesNotContain('\u001b', line);
        Assert.Contains("GET\\n\\u001b[2J", line, StringComparison.Ordinal);
    }

    public static TheoryData<string> Reserved => new()
    {
        "HTTPS_PROXY", "https_proxy", "Https_Proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
        "LD_PRELOAD", "ld_preload", "LD_LIBRARY_PATH", "NODE_USE_ENV_PROXY", "PROXYGUARD_CA_CERT", "PROXYGUARD_SPKI_SHA256",
        "PIP_CERT", "NPM_CONFIG_CAFILE", "AWS_CA_BUNDLE", "PROXYGUARD_ANYTHING", "NODE_OPTIONS", "PATH",
    };

    [Theory]
    [MemberData(nameof(Reserved))]
    public void AReservedSandboxEnvIsRefused(string name)
    {
        var error = Assert.Single(TestPolicies.Errors("version: 1\n" + string.Format(System.Globalization.CultureInfo.InvariantCulture, Secret, name)));
        Assert.Contains("is reserved", error.Message, StringComparison.Ordinal);
        Assert.Equal(6, error.Line);
        Assert.Equal(18, error.Column);
    }

    [Theory]
    [InlineData("1ABC")]
    [InlineData("A-B")]
    [InlineData("A B")]
    [InlineData("A=B")]
    [InlineData("\"\"")]
    [InlineData("ÄPI")]
    public void AnInvalidSandboxEnvIsRefused(string name)
    {
        var error = Assert.Single(TestPolicies.Errors("version: 1\n" + string.Format(System.Globalization.CultureInfo.InvariantCulture, Secret, name)));
        Assert.Equal(6, error.Line);
    }

    [Fact]
    public void SandboxEnvNamesThatDifferOnlyInCaseCollide()
    {
        var error = Assert.Single(TestPolicies.Errors("""
            version: 1
            secrets:
              - {name: a, value: env:A, hosts: [a.example.com], sandbox_env: API_KEY}
              - {name: b, value: env:B, hosts: [a.example.com], sandbox_env: api_key}
            """));
        Assert.Contains("already used", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("API_KEY")]
    [InlineData("OPENAI_API_KEY")]
    [InlineData("_X")]
    [InlineData("GITHUB_TOKEN")]
    public void OrdinarySandboxEnvNamesAreAccepted(string name) =>
        Assert.Equal(name, TestPolicies.Load("version: 1\n" + string.Format(System.Globalization.CultureInfo.InvariantCulture, Secret, name)).Secrets[0].SandboxEnv);
}
