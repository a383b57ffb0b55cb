using System.Security.Cryptography;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Content;

/// <summary>A proxy that knows one (synthetic) real secret value, bound to origin.test.</summary>
public sealed class HostSecretFixture : OriginFixture
{
    /// <summary>DNS-label shaped (lower-case hex) so that it survives host normalisation unchanged.</summary>
    public string SecretValue { get; } = "pgv" + Convert.ToHexString(RandomNumberGenerator.GetBytes(15)).ToLowerInvariant();

    protected override string Content => """
        content:
          builtin: all
        secrets:
          - name: hostsecret
            value: env:PG_TEST_HOST_SECRET
            hosts: [origin.test]
            in: [headers]

        """;

    protected override IDictionary<string, string>? ProxyEnvironment =>
        new Dictionary<string, string> { ["PG_TEST_HOST_SECRET"] = SecretValue };
}

/// <summary>A real secret value in a DNS label is refused, and the refusal's event does not store it (SPEC 4.4).</summary>
[Collection("proxy")]
public sealed class HostSecretTests : IClassFixture<HostSecretFixture>
{
    private readonly HostSecretFixture _f;

    public HostSecretTests(HostSecretFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task A_real_secret_value_in_a_connect_host_label_is_refused_and_never_recorded()
    {
        var host = $"{_f.SecretValue}.origin.test";
        var (tcp, refusal) = await RawProxyClient.ConnectAsync(_f.Proxy, host, _f.Origin.HttpsPort);
        tcp.Dispose();
        Assert.NotNull(refusal);
        Assert.True(refusal.Status == 403, refusal.Raw);
        Assert.Equal("content-finding", refusal.Header("X-ProxyGuard-Reason"));
        Assert.DoesNotContain(_f.SecretValue, refusal.Raw, StringComparison.Ordinal);
        Assert.Empty(_f.Origin.Received);

        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "connect"
            && ev.GetProperty("decision").GetString() == "deny" && ev.GetProperty("reason").GetString() == "content-finding");
        Assert.EndsWith(".origin.test", e.GetProperty("host").GetString(), StringComparison.Ordinal);
        var all = string.Join('\n', (await _f.Proxy.EventsAsync()).Select(ev => ev.GetRawText()));
        Assert.DoesNotContain(_f.SecretValue, all, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.SecretValue, _f.Proxy.Output, StringComparison.Ordinal);
    }
}
