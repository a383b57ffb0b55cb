using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>
/// The content scanner's <c>vault-secret</c> detector finds a real value in every form the shared real-value matcher
/// (the secret gate's and the scrubbers') knows: a request carrying the value base64-wrapped at 76 columns, as HTML
/// character references, as JSON <c>\u00XX</c> escapes or percent-encoded twice, toward a host the secret is not bound
/// to, is refused by the content stage as <c>vault-secret</c> (before, some of these forms were left to the secret gate:
/// <c>secret-real-value</c>), and the origin receives nothing.
/// </summary>
[Collection("proxy")]
public sealed class VaultSecretFormsTests : IClassFixture<PolicyOrigin>
{
    private const string Value = "pgsynthetic-vaultforms-0123456789abcdef";

    private readonly PolicyOrigin _o;

    public VaultSecretFormsTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task A_real_value_in_any_form_the_shared_matcher_knows_is_a_vault_secret_finding_toward_an_unbound_host()
    {
        using var dir = new TempDir();
        var policy = _o.Ports($"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: all
            tls:
              upstream_ca_files: [{_o.OriginCaPath}]
            rules:
              - name: echo
                hosts: [localhost, 127.0.0.1]
                ports: [{"{HTTPS}"}]
                methods: [GET, POST]
                paths: ["/echo/**"]
                action: allow
            secrets:
              - name: api
                value: env:PG_VAULTFORMS_API
                sandbox_env: API_TOKEN
                hosts: [localhost]
                in: [headers, query, body]
            """);
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), policy, null, new Dictionary<string, string> { ["PG_VAULTFORMS_API"] = Value });
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);

        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("{\"note\":\"the deploy key is " + Value + " and it rotates weekly, do not share it\"}"));
        var wrapped = string.Join("\n", base64.Chunk(76).Select(c => new string(c)));
        var html = string.Concat(Value.Select(c => $"&#x{(int)c:x2};"));
        var json = string.Concat(Value.Select(c => $"\\u{(int)c:x4}"));
        var twice = string.Concat(Value.Select(c => $"%25{(int)c:X2}"));
        (string Name, Func<string, HttpRequestMessage> Build)[] forms =
        [
            ("body: base64 wrapped at 76", url => Post(url, "text/plain", "attachment:\n" + wrapped + "\n")),
            ("body: HTML hex references", url => Post(url, "text/html", "<p>" + html + "</p>")),
            ("body: JSON \\u00XX", url => Post(url, "application/json", "{\"k\":\"" + json + "\"}")),
            ("header: HTML hex references", url => WithHeader(url, "X-Note", html)),
            ("query: percent twice", url => new HttpRequestMessage(HttpMethod.Get, url + "?next=" + twice)),
        ];

        var failures = new List<string>();
        foreach (var (name, build) in forms)
        {
            var marker = "vf" + failures.Count + Guid.NewGuid().ToString("N")[..8];
            using var request = build(_o.HttpsUrl("/echo/" + marker, "127.0.0.1"));
            using var response = await client.SendAsync(request);
            var reason = Header(response, "X-ProxyGuard-Reason");
            var rule = Header(response, "X-ProxyGuard-Rule");
            if ((int)response.StatusCode != 403 || reason != "content-finding" || rule != "vault-secret" || _o.OriginSaw(marker))
            {
                failures.Add($"{name}: {(int)response.StatusCode} reason={reason} rule={rule} originSaw={_o.OriginSaw(marker)}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // No event or log line carries the value, raw or in the forms sent.
        await proxy.WaitForEventAsync(e => e.GetRawText().Contains("vault-secret", StringComparison.Ordinal));
        var events = await proxy.EventsAsync();
        var logs = proxy.Output + string.Concat(events.Select(e => e.GetRawText()));
        foreach (var form in new[] { Value, html, json, twice })
        {
            Assert.DoesNotContain(form, logs, StringComparison.Ordinal);
        }
    }

    private static HttpRequestMessage Post(string url, string contentType, string body) =>
        new(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, contentType) };

    private static HttpRequestMessage WithHeader(string url, string name, string value)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.TryAddWithoutValidation(name, value);
        return request;
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : string.Empty;
}
