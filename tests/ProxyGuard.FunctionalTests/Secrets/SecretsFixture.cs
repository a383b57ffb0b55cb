using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>
/// The origin on loopback and a proxy holding three synthetic env secrets, all bound to
/// <c>localhost</c> only (the rule also allows <c>127.0.0.1</c> and <c>origin.test</c>, which are
/// therefore unbound hosts for the secrets).
/// </summary>
public class SecretsFixture : OriginFixture
{
    public const string GitPlaceholder = "PG_E2E_GIT_PLACEHOLDER_0123";

    /// <summary>Bound to localhost, in headers and query; its value contains '/' so its URL-encoded form differs.</summary>
    public string ApiValue { get; } = SecretForms.NewValue("api", withSlash: true);

    /// <summary>Bound to localhost, in headers only; explicit placeholder.</summary>
    public string GitValue { get; } = SecretForms.NewValue("git");

    /// <summary>Bound to localhost, in headers and body.</summary>
    public string FormValue { get; } = SecretForms.NewValue("form");

    public string ApiPlaceholder => Env["API_TOKEN"];

    public string GitPlaceholderFromEnv => Env["GIT_TOKEN"];

    public string FormPlaceholder => Env["FORM_TOKEN"];

    public IEnumerable<(string Name, string Value)> RealValues => [("api", ApiValue), ("git", GitValue), ("form", FormValue)];

    /// <summary>An origin that answers gzip/deflate/br whatever the request asked for.</summary>
    public CompressingOrigin Compressing { get; private set; } = null!;

    protected override string Rules => """
        rules:
          - name: origin
            hosts: [localhost, 127.0.0.1, origin.test]
            ports: [{HTTPS}, {HTTP}]
            action: allow
          - name: compressing
            hosts: [localhost]
            ports: [{COMPRESSING}]
            action: allow
        secrets:
          - name: api
            value: env:PG_E2E_API_TOKEN
            sandbox_env: API_TOKEN
            hosts: [localhost]
            in: [headers, query]
          - name: git
            value: env:PG_E2E_GIT_TOKEN
            placeholder: PG_E2E_GIT_PLACEHOLDER_0123
            sandbox_env: GIT_TOKEN
            hosts: [localhost]
            in: [headers]
          - name: form
            value: env:PG_E2E_FORM_TOKEN
            sandbox_env: FORM_TOKEN
            hosts: [localhost]
            in: [headers, body]
        """.Replace("{COMPRESSING}", Compressing.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public override async Task InitializeAsync()
    {
        Compressing = await CompressingOrigin.StartAsync(Pki.Issue(["localhost"]));
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Compressing.DisposeAsync();
    }

    protected override IDictionary<string, string>? ProxyEnvironment => new Dictionary<string, string>
    {
        ["PG_E2E_API_TOKEN"] = ApiValue,
        ["PG_E2E_GIT_TOKEN"] = GitValue,
        ["PG_E2E_FORM_TOKEN"] = FormValue,
        ["PROXYGUARD_LOG_LEVEL"] = "Debug",
    };

    /// <summary>The variables of the proxy process that hold real values (to run other CLI commands with them).</summary>
    public IDictionary<string, string> RealEnvironment => ProxyEnvironment!;

    public HttpClient Client() => ProxyClients.Create(Proxy.ProxyUrl, Env["PROXYGUARD_CA_CERT"]);

    /// <summary>Sends <paramref name="request"/> and returns the status, the response text and the number of requests the origin received meanwhile.</summary>
    public async Task<(HttpResponseMessage Response, string Body, int OriginRequests)> SendAsync(HttpRequestMessage request)
    {
        using var client = Client();
        var before = Origin.Received.Count;
        var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        return (response, body, Origin.Received.Count - before);
    }

    public static string Reason(HttpResponseMessage response) =>
        response.Headers.TryGetValues("X-ProxyGuard-Reason", out var values) ? string.Join(",", values) : string.Empty;

    public static void AssertDenied(HttpStatusCode status, string reason, (HttpResponseMessage Response, string Body, int OriginRequests) result)
    {
        Assert.True(result.Response.StatusCode == status, $"expected {(int)status}, got {(int)result.Response.StatusCode}: {result.Body}");
        Assert.Equal(reason, Reason(result.Response));
        Assert.Equal(0, result.OriginRequests);
    }
}
