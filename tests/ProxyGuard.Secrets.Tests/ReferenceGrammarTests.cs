using ProxyGuard.Secrets.Tests.Support;
using PolicyReference = ProxyGuard.Policy.SecretReference;

namespace ProxyGuard.Secrets.Tests;

/// <summary>One grammar: what the policy accepts is exactly what the resolver resolves.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Disposed in IAsyncLifetime.DisposeAsync.")]
public sealed class ReferenceGrammarTests : IAsyncLifetime
{
    private readonly FakeVaultServer _server = new();

    public Task InitializeAsync()
    {
        _server.Secrets["/v1/secret/data/ci/github"] = "{\"token\":\"synthetic-token-0001\",\"user.name\":\"ci-bot-synthetic\"}";
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private SecretResolver Resolver() => new(new SecretResolverOptions
    {
        Environment = name => name == "GOOD_NAME" ? "synthetic-env-0001" : null,
        Vault = new VaultOptions { Address = _server.Address, Token = "s.synthetic-vault-token" },
    });

    [Theory]
    [InlineData("env:GOOD_NAME")]
    [InlineData("env:_x1")]
    [InlineData("file:/run/secrets/github")]
    [InlineData("file:relative/token")]
    [InlineData("vault:secret/data/ci/github#token")]
    [InlineData("vault:kv/data/a/b/c#f.1")]
    [InlineData("vault:my-kv_2/data/x.y#user-name")]
    public void AcceptedByPolicyAndResolver(string reference)
    {
        Assert.True(PolicyReference.TryParse(reference, out var parsed, out var error), error);
        Assert.Equal(reference, parsed!.Text);
        Assert.Null(SecretResolver.ValidateSyntax(reference));
    }

    [Theory]
    [InlineData("vault:secret/data/..#f")]
    [InlineData("vault:secret/data/./x#f")]
    [InlineData("vault:../data/x#f")]
    [InlineData("vault:secret/data/ci/../../sys#f")]
    [InlineData("vault:secret/data/ci#")]
    [InlineData("vault:secret/data/ci")]
    [InlineData("vault:secret/ci#token")]
    [InlineData("vault:secret/data/#token")]
    [InlineData("vault:secret//data/x#token")]
    [InlineData("vault:secret/data/x y#token")]
    [InlineData("env:")]
    [InlineData("env:A-B")]
    [InlineData("env:A=B")]
    [InlineData("file:")]
    [InlineData("file:/dir/")]
    [InlineData("file:/x\ny")]
    [InlineData("ENV:X")]
    [InlineData("literal-secret")]
    public async Task RejectedByPolicyAndResolverAlike(string reference)
    {
        Assert.False(PolicyReference.TryParse(reference, out _, out var error));
        Assert.Equal(error, SecretResolver.ValidateSyntax(reference));
        using var resolver = Resolver();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync(reference, CancellationToken.None).AsTask());
        Assert.Equal(error!.Replace('\n', ' '), ex.Reason);
        Assert.Empty(_server.Requests);
    }

    [Fact]
    public async Task FieldFormResolvesEndToEndThroughVault()
    {
        using var resolver = Resolver();
        Assert.Equal("synthetic-token-0001", (await resolver.GetAsync("vault:secret/data/ci/github#token", CancellationToken.None)).Reveal());
        Assert.Equal("ci-bot-synthetic", (await resolver.GetAsync("vault:secret/data/ci/github#user.name", CancellationToken.None)).Reveal());
        Assert.All(_server.Requests, r => Assert.Equal("/v1/secret/data/ci/github", r.Path));
        var missing = await Assert.ThrowsAsync<SecretUnavailableException>(
            () => resolver.GetAsync("vault:secret/data/ci/github#nope", CancellationToken.None).AsTask());
        Assert.Contains("'nope'", missing.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnvReferenceUsesTheSameParse()
    {
        using var resolver = Resolver();
        Assert.Equal("synthetic-env-0001", (await resolver.GetAsync("env:GOOD_NAME", CancellationToken.None)).Reveal());
    }
}
