using System.Diagnostics;
using ProxyGuard.Secrets.Tests.Support;

namespace ProxyGuard.Secrets.Tests;

[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Disposed in IAsyncLifetime.DisposeAsync.")]
public sealed class VaultTests : IAsyncLifetime
{
    private const string Token = "s.synthetic-vault-token";
    private const string Reference = "vault:secret/data/ci/github#token";
    private const string Value = "synthetic-vault-value-0001";
    private readonly FakeVaultServer _server = new();
    private readonly FakeTimeProvider _time = new();

    public Task InitializeAsync()
    {
        _server.Secrets["/v1/secret/data/ci/github"] = $"{{\"token\":\"{Value}\",\"user\":\"ci-bot\"}}";
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private SecretResolver Resolver(string? ns = null, TimeSpan? timeout = null, string? tokenFile = null) => new(new SecretResolverOptions
    {
        Environment = _ => null,
        Vault = new VaultOptions { Address = _server.Address, Token = tokenFile is null ? Token : null, TokenFile = tokenFile, Namespace = ns },
        CacheTtl = TimeSpan.FromMinutes(5),
        StaleGrace = TimeSpan.FromMinutes(1),
        RequestTimeout = timeout ?? TimeSpan.FromSeconds(5),
        TimeProvider = _time,
    });

    [Fact]
    public async Task ReadsFieldWithTokenHeader()
    {
        using var resolver = Resolver();
        var secret = await resolver.GetAsync(Reference, CancellationToken.None);
        Assert.Equal(Value, secret.Reveal());
        var request = Assert.Single(_server.Requests);
        Assert.Equal("GET", request.Method);
        Assert.Equal("/v1/secret/data/ci/github", request.Path);
        Assert.Equal(Token, request.Headers["X-Vault-Token"]);
        Assert.False(request.Headers.ContainsKey("X-Vault-Namespace"));
    }

    [Fact]
    public async Task SendsNamespaceHeader()
    {
        _server.RequiredNamespace = "team-a";
        using var resolver = Resolver(ns: "team-a");
        Assert.Equal(Value, (await resolver.GetAsync(Reference, CancellationToken.None)).Reveal());
        Assert.Equal("team-a", Assert.Single(_server.Requests).Headers["X-Vault-Namespace"]);
    }

    [Fact]
    public async Task TokenFromFile()
    {
        var dir = Directory.CreateTempSubdirectory("pg-vault-").FullName;
        try
        {
            var file = Path.Combine(dir, "token");
            await File.WriteAllTextAsync(file, Token + "\n");
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            using (var resolver = Resolver(tokenFile: file))
            {
                Assert.Equal(Value, (await resolver.GetAsync(Reference, CancellationToken.None)).Reveal());
            }

            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherWrite);
            using (var resolver = Resolver(tokenFile: file))
            {
                Assert.Contains("token file", resolver.Validate(Reference), StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task WrongTokenIs403()
    {
        _server.RequiredToken = "s.another-token";
        using var resolver = Resolver();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync(Reference, CancellationToken.None).AsTask());
        Assert.Contains("403", ex.Reason, StringComparison.Ordinal);
        Assert.Contains("denied", ex.Reason, StringComparison.Ordinal);
        Assert.Equal(Reference, ex.Reference);
        Assert.DoesNotContain(Token, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingPathIs404()
    {
        using var resolver = Resolver();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(
            () => resolver.GetAsync("vault:secret/data/ci/none#token", CancellationToken.None).AsTask());
        Assert.Contains("404", ex.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(500)]
    [InlineData(503)]
    public async Task ServerErrorsAreUnavailable(int status)
    {
        _server.ForcedStatus = status;
        using var resolver = Resolver();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync(Reference, CancellationToken.None).AsTask());
        Assert.Contains(status.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingFieldListsFieldNamesOnly()
    {
        using var resolver = Resolver();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(
            () => resolver.GetAsync("vault:secret/data/ci/github#password", CancellationToken.None).AsTask());
        Assert.Contains("token, user", ex.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(Value, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StallTimesOutQuickly()
    {
        _server.Stall = true;
        using var resolver = Resolver(timeout: TimeSpan.FromMilliseconds(300));
        var watch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync(Reference, CancellationToken.None).AsTask());
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), watch.Elapsed.ToString());
        Assert.Contains("did not answer", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnreachableVaultIsUnavailable()
    {
        var address = _server.Address;
        await _server.DisposeAsync();
        using var resolver = new SecretResolver(new SecretResolverOptions
        {
            Vault = new VaultOptions { Address = address, Token = Token },
            RequestTimeout = TimeSpan.FromSeconds(2),
        });
        Assert.Contains("vault", resolver.Validate(Reference), StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigurationFromEnvironment()
    {
        var env = new Dictionary<string, string>
        {
            ["VAULT_ADDR"] = _server.Address.ToString(),
            ["VAULT_TOKEN"] = Token,
        };
        using var resolver = new SecretResolver(new SecretResolverOptions { Environment = n => env.GetValueOrDefault(n) });
        Assert.Null(resolver.Validate(Reference));

        using var noAddress = new SecretResolver(new SecretResolverOptions { Environment = _ => null });
        Assert.Contains("VAULT_ADDR", noAddress.Validate(Reference), StringComparison.Ordinal);

        using var plainHttp = new SecretResolver(new SecretResolverOptions
        {
            Vault = new VaultOptions { Address = new Uri("http://vault.example.com:8200"), Token = Token },
        });
        Assert.Contains("plain http", plainHttp.Validate(Reference), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CachesWithinTtlAndRefetchesAfter()
    {
        using var resolver = Resolver();
        var first = await resolver.GetAsync(Reference, CancellationToken.None);
        _time.Advance(TimeSpan.FromMinutes(2));
        var second = await resolver.GetAsync(Reference, CancellationToken.None);
        Assert.Same(first, second);
        Assert.Equal(1, _server.RequestCount);

        _server.Secrets["/v1/secret/data/ci/github"] = "{\"token\":\"synthetic-vault-value-0002\"}";
        _time.Advance(TimeSpan.FromMinutes(4));
        var third = await resolver.GetAsync(Reference, CancellationToken.None);
        Assert.Equal(2, _server.RequestCount);
        Assert.Equal("synthetic-vault-value-0002", third.Reveal());
        Assert.Equal("synthetic-vault-value-0002", first.Reveal());
    }

    [Fact]
    public async Task ConcurrentFetchesAreSingleFlight()
    {
        using var resolver = Resolver();
        var values = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => resolver.GetAsync(Reference, CancellationToken.None).AsTask()));
        Assert.All(values, v => Assert.Same(values[0], v));
        Assert.Equal(1, _server.RequestCount);
    }

    [Fact]
    public async Task FieldsOfOneSecretResolveSeparately()
    {
        using var resolver = Resolver();
        Assert.Equal("ci-bot", (await resolver.GetAsync("vault:secret/data/ci/github#user", CancellationToken.None)).Reveal());
        Assert.Equal(Value, (await resolver.GetAsync(Reference, CancellationToken.None)).Reveal());
    }

    [Fact]
    public async Task BackgroundRefreshStartsBeforeExpiry()
    {
        using var resolver = Resolver();
        var secret = await resolver.GetAsync(Reference, CancellationToken.None);
        _server.Secrets["/v1/secret/data/ci/github"] = "{\"token\":\"synthetic-vault-value-0003\"}";
        _time.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(Value, secret.Reveal());
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (secret.Reveal() != "synthetic-vault-value-0003" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal("synthetic-vault-value-0003", secret.Reveal());
    }

    [Fact]
    public async Task OutageWithinGraceServesStaleThenFailsClosed()
    {
        using var resolver = Resolver();
        var secret = await resolver.GetAsync(Reference, CancellationToken.None);
        _server.ForcedStatus = 503;

        _time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(30));
        var stale = await resolver.GetAsync(Reference, CancellationToken.None);
        Assert.Equal(Value, stale.Reveal());
        Assert.True(secret.IsAvailable);

        _time.Advance(TimeSpan.FromMinutes(1));
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync(Reference, CancellationToken.None).AsTask());
        Assert.Contains("503", ex.Reason, StringComparison.Ordinal);
        var reveal = Assert.Throws<SecretUnavailableException>(secret.Reveal);
        Assert.Contains("failing closed", reveal.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(Value, reveal.ToString(), StringComparison.Ordinal);
        Assert.False(secret.IsAvailable);
        Assert.NotNull(resolver.Validate(Reference));

        _server.ForcedStatus = null;
        SecretValue? recovered = null;
        for (var attempt = 0; recovered is null; attempt++)
        {
            try
            {
                recovered = await resolver.GetAsync(Reference, CancellationToken.None);
            }
            catch (SecretUnavailableException) when (attempt < 20)
            {
                // A background refresh started during the outage may still be in flight.
                await Task.Delay(50);
            }
        }

        Assert.Equal(Value, recovered.Reveal());
        Assert.Equal(Value, secret.Reveal());
    }

    [Fact]
    public async Task SubstitutionFailsClosedAfterExpiry()
    {
        using var resolver = Resolver();
        var secret = await resolver.GetAsync(Reference, CancellationToken.None);
        var substitutor = new Substitutor([new SecretBinding("github", "PG_GITHUB_TESTTESTTESTTEST", secret, h => h == "api.github.com", true, true, false)]);
        Assert.Equal("Bearer " + Value, substitutor.SubstituteHeader("Authorization", "Bearer PG_GITHUB_TESTTESTTESTTEST", "api.github.com").Value);

        _server.ForcedStatus = 500;
        _time.Advance(TimeSpan.FromMinutes(7));
        Assert.Throws<SecretUnavailableException>(() => substitutor.SubstituteHeader("Authorization", "Bearer PG_GITHUB_TESTTESTTESTTEST", "api.github.com"));
        Assert.Equal("github", substitutor.FindRealValue("echo " + Value));
        Assert.Equal("x PG_GITHUB_TESTTESTTESTTEST", substitutor.ScrubText("x " + Value));
    }
}
