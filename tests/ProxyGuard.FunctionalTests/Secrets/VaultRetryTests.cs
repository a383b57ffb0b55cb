using System.Net;
using System.Net.Http.Headers;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>A secret Vault did not have when the policy loaded is retried in the background, without a reload.</summary>
[Collection("proxy")]
public sealed class VaultRetryTests : IClassFixture<VaultRetryTests.RetryFixture>
{
    private const string AbsentPath = "/v1/secret/data/ci/absent";
    private readonly RetryFixture _f;

    public VaultRetryTests(RetryFixture fixture)
    {
        _f = fixture;
    }

    public sealed class RetryFixture : VaultFixture
    {
        protected override IDictionary<string, string>? ProxyEnvironment =>
            new Dictionary<string, string>(base.ProxyEnvironment!) { ["PROXYGUARD_SECRET_RETRY"] = "1" };
    }

    [Fact]
    public async Task A_secret_missing_at_load_works_once_vault_has_it()
    {
        var placeholder = _f.Env["MISSING_TOKEN"];
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await SendAsync(placeholder)).StatusCode);

        var value = SecretForms.NewValue("late");
        _f.Vault.Secrets[AbsentPath] = $"{{\"token\":\"{value}\"}}";
        var sw = System.Diagnostics.Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            await Task.Delay(500);
            status = (await SendAsync(placeholder)).StatusCode;
        }
        while (status != HttpStatusCode.OK && sw.Elapsed < TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Bearer " + value, _f.Origin.ReceivedHeaders.Last()["Authorization"]);
        Assert.DoesNotContain(value, _f.Proxy.Output, StringComparison.Ordinal);
    }

    private async Task<HttpResponseMessage> SendAsync(string token)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Env["PROXYGUARD_CA_CERT"]);
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/retry"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await client.SendAsync(request);
    }
}
