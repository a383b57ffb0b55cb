using System.Text.Json;
using ProxyGuard.Secrets.Tests.Support;
using static ProxyGuard.Secrets.Tests.Support.TestSecrets;

namespace ProxyGuard.Secrets.Tests;

public sealed class RedactionTests
{
    [Fact]
    public void SecretValueComparesBytesWithoutRevealing()
    {
        var value = new SecretValue(GitHubValue);
        Assert.True(value.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(GitHubValue)));
        Assert.False(value.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(GitHubValue + "x")));
        Assert.False(value.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(GitHubValue[..^1] + "?")));
        Assert.False(value.FixedTimeEquals([]));
    }

    [Fact]
    public void SecretValueRendersRedacted()
    {
        var value = new SecretValue(GitHubValue);
        Assert.Equal("[REDACTED]", value.ToString());
        Assert.Equal("token [REDACTED]", $"token {value}");
        Assert.Equal("\"[REDACTED]\"", JsonSerializer.Serialize(value));
        Assert.Equal("{\"V\":\"[REDACTED]\"}", JsonSerializer.Serialize(new { V = value }));
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize<SecretValue>("\"x\""));
        Assert.Equal(GitHubValue, value.Reveal());
    }

    [Fact]
    public void BindingAndResultRenderRedacted()
    {
        var substitutor = Create();
        foreach (var binding in substitutor.Bindings)
        {
            var text = binding.ToString();
            Assert.Contains(binding.Name, text, StringComparison.Ordinal);
            Assert.Contains("[REDACTED]", text, StringComparison.Ordinal);
            Assert.DoesNotContain(binding.Value.Reveal(), text, StringComparison.Ordinal);
            Assert.DoesNotContain(binding.Value.Reveal(), $"{binding with { Name = "copy" }}", StringComparison.Ordinal);
        }

        var result = substitutor.SubstituteHeader("Authorization", "Bearer " + GitHubPlaceholder, "api.github.com");
        Assert.Contains(GitHubValue, result.Value, StringComparison.Ordinal);
        Assert.DoesNotContain(GitHubValue, result.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(GitHubValue, substitutor.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void OptionsRenderWithoutToken()
    {
        var options = new VaultOptions { Address = new Uri("https://vault.test"), Token = "s.synthetic-vault-token" };
        Assert.DoesNotContain("s.synthetic-vault-token", options.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("s.synthetic-vault-token", new SecretResolverOptions { Vault = options }.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ExceptionMessagesNeverContainTheValue()
    {
        var value = new SecretValue(GitHubValue);
        var ex = new SecretUnavailableException("env:GITHUB_TOKEN", "line one\nline two");
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Equal("env:GITHUB_TOKEN", ex.Reference);
        Assert.DoesNotContain(value.Reveal(), ex.ToString(), StringComparison.Ordinal);
    }
}
