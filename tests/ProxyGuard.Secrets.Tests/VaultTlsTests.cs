using ProxyGuard.Secrets.Tests.Support;

namespace ProxyGuard.Secrets.Tests;

public sealed class VaultTlsTests
{
    private const string Token = "s.synthetic-vault-token";
    private const string Reference = "vault:kv/data/app#key";

    [Fact]
    public async Task HttpsWithCaFileAndWithout()
    {
        var (ca, leaf) = TestCertificates.Create();
        using (ca)
        using (leaf)
        {
            await using var server = new FakeVaultServer(leaf);
            server.Secrets["/v1/kv/data/app"] = "{\"key\":\"synthetic-tls-value-0001\"}";
            var dir = Directory.CreateTempSubdirectory("pg-vault-ca-").FullName;
            try
            {
                var caFile = Path.Combine(dir, "ca.pem");
                await File.WriteAllTextAsync(caFile, ca.ExportCertificatePem());

                using (var trusted = new SecretResolver(new SecretResolverOptions
                {
                    Vault = new VaultOptions { Address = server.Address, Token = Token, CaFile = caFile },
                }))
                {
                    Assert.Equal("synthetic-tls-value-0001", (await trusted.GetAsync(Reference, CancellationToken.None)).Reveal());
                }

                using (var untrusted = new SecretResolver(new SecretResolverOptions
                {
                    Vault = new VaultOptions { Address = server.Address, Token = Token },
                }))
                {
                    Assert.Contains("cannot reach vault", untrusted.Validate(Reference), StringComparison.Ordinal);
                }

                using (var missingCa = new SecretResolver(new SecretResolverOptions
                {
                    Vault = new VaultOptions { Address = server.Address, Token = Token, CaFile = Path.Combine(dir, "none.pem") },
                }))
                {
                    Assert.Contains("VAULT_CACERT", missingCa.Validate(Reference), StringComparison.Ordinal);
                }
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }
    }
}
