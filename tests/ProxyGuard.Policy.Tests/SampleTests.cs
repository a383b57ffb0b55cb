using System.Text.Json;
using ProxyGuard.Policy.Validation;

namespace ProxyGuard.Policy.Tests;

/// <summary>The shipped sample policies load, their cases pass, and the JSON Schema agrees with the validator.</summary>
public sealed class SampleTests
{
    private static readonly PolicyLoadOptions s_options = new() { CheckFilePermissions = false };

    public static TheoryData<string> Samples() => new()
    {
        "policies/default.yaml",
        "policies/examples/coding-agent.yaml",
    };

    [Theory]
    [MemberData(nameof(Samples))]
    public void SampleLoadsAndItsCasesPass(string relative)
    {
        var path = Path.Combine(TestPolicies.RepoRoot(), relative);
        var result = PolicyLoader.LoadFile(path, s_options);
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        Assert.Equal(RuleAction.Deny, result.Policy!.Default);

        var report = PolicyCaseRunner.RunFile(result.Policy, Path.ChangeExtension(path, ".cases.yaml"));
        Assert.True(report.Success, string.Join("\n", report.Diagnostics.Select(d => d.ToString()).Concat(report.Results.Where(r => !r.Passed).Select(r => r.ToString()))));
        Assert.True(report.Passed >= 10);
        Assert.Equal($"{report.Passed} passed, 0 failed", report.Summary);
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void SampleDeclaresTheSchema(string relative)
    {
        var firstLine = File.ReadLines(Path.Combine(TestPolicies.RepoRoot(), relative)).First();
        Assert.StartsWith("# yaml-language-server: $schema=", firstLine, StringComparison.Ordinal);
        var schemaPath = firstLine["# yaml-language-server: $schema=".Length..];
        Assert.True(File.Exists(Path.Combine(TestPolicies.RepoRoot(), Path.GetDirectoryName(relative)!, schemaPath)), schemaPath);
    }

    [Fact]
    public void CodingAgentSampleKeepsSecretsAsReferences()
    {
        var policy = PolicyLoader.LoadFile(Path.Combine(TestPolicies.RepoRoot(), "policies/examples/coding-agent.yaml"), s_options).Policy!;
        Assert.All(policy.Secrets, s => Assert.StartsWith("env:", s.ValueReference, StringComparison.Ordinal));
        Assert.All(policy.Clients, c => Assert.StartsWith("env:", c.TokenReference, StringComparison.Ordinal));
        Assert.Contains(policy.Secrets, s => s.Placeholder is not null);
        Assert.Null(policy.Content.BuiltinDetectorIds);
    }

    [Fact]
    public void SchemaListsExactlyTheValidatorsKeys()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPolicies.RepoRoot(), "policies/schema/proxyguard-policy.schema.json")));
        var root = doc.RootElement;
        Assert.False(root.GetProperty("additionalProperties").GetBoolean());
        AssertKeys(PolicyKeys.Top, root);
        var props = root.GetProperty("properties");
        AssertKeys(PolicyKeys.Client, props.GetProperty("clients").GetProperty("items"));
        AssertKeys(PolicyKeys.Network, props.GetProperty("network"));
        AssertKeys(PolicyKeys.Rule, props.GetProperty("rules").GetProperty("items"));
        var content = props.GetProperty("content");
        AssertKeys(PolicyKeys.Content, content);
        AssertKeys(PolicyKeys.ContentRule, content.GetProperty("properties").GetProperty("rules").GetProperty("items"));
        AssertKeys(PolicyKeys.Exemption, content.GetProperty("properties").GetProperty("exempt").GetProperty("items"));
        AssertKeys(PolicyKeys.Secret, props.GetProperty("secrets").GetProperty("items"));
        AssertKeys(PolicyKeys.Tls, props.GetProperty("tls"));
    }

    [Fact]
    public void CasesSchemaListsExactlyTheRunnersKeys()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPolicies.RepoRoot(), "policies/schema/proxyguard-cases.schema.json")));
        var root = doc.RootElement;
        AssertKeys(PolicyCaseRunner.TopKeys, root);
        var item = root.GetProperty("properties").GetProperty("cases").GetProperty("items");
        AssertKeys(PolicyCaseRunner.CaseKeys, item);
        AssertKeys(PolicyCaseRunner.ExpectKeys, item.GetProperty("properties").GetProperty("expect"));
    }

    private static void AssertKeys(string[] expected, JsonElement objectSchema)
    {
        Assert.False(objectSchema.GetProperty("additionalProperties").GetBoolean());
        var actual = objectSchema.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal);
        Assert.Equal(expected.Order(StringComparer.Ordinal), actual);
    }
}
