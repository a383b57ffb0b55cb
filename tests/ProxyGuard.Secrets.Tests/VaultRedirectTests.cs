using ProxyGuard.Secrets.Tests.Support;

namespace ProxyGuard.Secrets.Tests;

/// <summary>
/// Issue 20 class 8: the Vault client never sends X-Vault-Token to another origin or over plain http on a redirect.
/// Same-origin redirects are followed (bounded); any other redirect fails closed with a clear reason.
/// </summary>
public sealed class VaultRedirectTests
{
    private const string Token = "s.synthetic-vault-token";
    private const string Reference = "vault:secret/data/ci/github#token";
    private const string Value = "synthetic-vault-value-0001";

    private static SecretResolver Resolver(Uri address, string? caFile = null) => new(new SecretResolverOptions
    {
        Environment = _ => null,
        Vault = new VaultOptions { Address = address, Token = Token, CaFile = caFile },
        RequestTimeout = TimeSpan.FromSeconds(5),
    });

    [Theory]
    [InlineData(307)]
    [InlineData(302)]
    [InlineData(308)]
    public async Task Redirect_to_another_port_fails_closed_and_the_other_server_never_sees_the_token(int status)
    {
        await using var other = new FakeVaultServer();
        other.Secrets["/v1/secret/data/ci/github"] = $"{{\"token\":\"{Value}\"}}";
        await using var server = new FakeVaultServer { RedirectStatus = status };
        server.RedirectTo = path => other.Address + path.TrimStart('/');

        using var resolver = Resolver(server.Address);
        var error = resolver.Validate(Reference);
        Assert.NotNull(error);
        Assert.Contains("another origin", error, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, error, StringComparison.Ordinal);
        Assert.Single(server.Requests);
        Assert.DoesNotContain(other.Requests, r => r.Headers.ContainsKey("X-Vault-Token"));
        Assert.Empty(other.Requests);
    }

    [Fact]
    public async Task Redirect_from_https_to_plain_http_fails_closed_and_the_http_server_never_sees_the_token()
    {
        var (ca, leaf) = TestCertificates.Create();
        using (ca)
        using (leaf)
        {
            await using var plain = new FakeVaultServer();
            await using var server = new FakeVaultServer(leaf);
            server.RedirectTo = path => plain.Address + path.TrimStart('/');
            var dir = Directory.CreateTempSubdirectory("pg-vault-redirect-").FullName;
            try
            {
                var caFile = Path.Combine(dir, "ca.pem");
                await File.WriteAllTextAsync(caFile, ca.ExportCertificatePem());
                using var resolver = Resolver(server.Address, caFile);
                var error = resolver.Validate(Reference);
                Assert.NotNull(error);
                Assert.Contains("another origin (http://", error, StringComparison.Ordinal);
                Assert.Single(server.Requests);
                Assert.Empty(plain.Requests);
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public async Task Same_origin_redirect_is_followed_with_the_token()
    {
        await using var server = new FakeVaultServer();
        server.Secrets["/v1/moved/data/ci/github"] = $"{{\"token\":\"{Value}\"}}";
        server.RedirectTo = path => path.StartsWith("/v1/secret/", StringComparison.Ordinal) ? "/v1/moved/" + path["/v1/secret/".Length..] : null;
        using var resolver = Resolver(server.Address);
        Assert.Equal(Value, (await resolver.GetAsync(Reference, CancellationToken.None)).Reveal());
        Assert.Equal(["/v1/secret/data/ci/github", "/v1/moved/data/ci/github"], server.Requests.Select(r => r.Path));
        Assert.All(server.Requests, r => Assert.Equal(Token, r.Headers["X-Vault-Token"]));
    }

    [Fact]
    public async Task Same_origin_redirect_loop_is_bounded()
    {
        await using var server = new FakeVaultServer();
        server.RedirectTo = path => path;
        using var resolver = Resolver(server.Address);
        var error = resolver.Validate(Reference);
        Assert.NotNull(error);
        Assert.Contains("redirected more than 3 times", error, StringComparison.Ordinal);
        Assert.Equal(4, server.Requests.Count);
    }
}
