using System.Globalization;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>
/// One proxy in front of misbehaving origins: resets, stalls, malformed HTTP, bad certificates, a closed port, a
/// name that does not resolve, and a vault secret whose vault (VAULT_ADDR) is a closed loopback port.
/// </summary>
public sealed class FaultFixture : IAsyncLifetime
{
    public TempDir Dir { get; } = new();

    public TestPki Pki { get; } = new();

    public TestOrigin Healthy { get; private set; } = null!;

    public FaultOrigin ResetMidRequest { get; private set; } = null!;

    public FaultOrigin ResetMidResponse { get; private set; } = null!;

    public FaultOrigin Stall { get; private set; } = null!;

    public FaultOrigin Malformed { get; private set; } = null!;

    public FaultOrigin Expired { get; private set; } = null!;

    public FaultOrigin WrongName { get; private set; } = null!;

    public int ClosedPort { get; private set; }

    public int VaultPort { get; private set; }

    public ProxyProcess Proxy { get; private set; } = null!;

    public string VaultPlaceholder { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        Healthy = await TestOrigin.StartAsync(Pki.Issue(["localhost", "127.0.0.1"]));
        ResetMidRequest = new FaultOrigin(FaultBehaviour.ResetMidRequest);
        ResetMidResponse = new FaultOrigin(FaultBehaviour.ResetMidResponse);
        Stall = new FaultOrigin(FaultBehaviour.Stall);
        Malformed = new FaultOrigin(FaultBehaviour.Malformed);
        Expired = new FaultOrigin(FaultBehaviour.Ok, Pki.Issue(["localhost", "127.0.0.1"], expired: true));
        WrongName = new FaultOrigin(FaultBehaviour.Ok, Pki.Issue(["wrong-name.test"]));
        ClosedPort = FaultOrigin.ClosedPort();
        VaultPort = FaultOrigin.ClosedPort();
        var ports = string.Join(", ", new[]
        {
            Healthy.HttpPort, Healthy.HttpsPort, ResetMidRequest.Port, ResetMidResponse.Port, Stall.Port, Malformed.Port,
            Expired.Port, WrongName.Port, ClosedPort,
        }.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{Pki.WriteCaPem(Dir.Path)}]
            secrets:
              - name: vaulted
                value: vault:secret/data/ci/token#token
                sandbox_env: VAULTED_TOKEN
                hosts: [127.0.0.1]
                in: [headers]
            rules:
              - name: faults
                hosts: [127.0.0.1, localhost]
                ports: [{ports}]
                action: allow
              - name: unresolvable
                hosts: [nonexistent.invalid]
                ports: [80, 443]
                action: allow
            """;
        Proxy = await ProxyProcess.StartAsync(Path.Combine(Dir.Path, "proxy"), policy, environment: new Dictionary<string, string>
        {
            ["VAULT_ADDR"] = $"http://127.0.0.1:{VaultPort}",
            ["VAULT_TOKEN"] = "synthetic-test-vault-token",
        });
        VaultPlaceholder = (await Proxy.EnvAsync())["VAULTED_TOKEN"];
    }

    public async Task DisposeAsync()
    {
        if (Proxy is not null)
        {
            await Proxy.DisposeAsync();
        }

        foreach (var origin in new[] { ResetMidRequest, ResetMidResponse, Stall, Malformed, Expired, WrongName })
        {
            if (origin is not null)
            {
                await origin.DisposeAsync();
            }
        }

        if (Healthy is not null)
        {
            await Healthy.DisposeAsync();
        }

        Pki.Dispose();
        Dir.Dispose();
    }
}
