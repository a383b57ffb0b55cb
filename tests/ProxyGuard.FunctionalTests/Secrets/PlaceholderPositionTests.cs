using System.Net;
using System.Net.Sockets;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>
/// A placeholder in every position that is not a plain value — query parameter name, header name, path segment,
/// cookie name, JSON key, form and multipart field names, a multipart file name, the method, a fragment, a Basic-auth
/// user name — toward the host its secret is bound to and toward an unbound one. Whatever the outcome, the real value
/// (raw, percent-encoded, base64 at every alignment, JSON-escaped) appears in no response, event, log line at Debug
/// level, metric or file the proxy wrote.
/// </summary>
[Collection("proxy")]
public sealed class PlaceholderPositionTests : IClassFixture<LeakFixture>
{
    private readonly LeakFixture _f;

    public PlaceholderPositionTests(LeakFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Placeholders_in_name_positions_never_leak_a_real_value_anywhere()
    {
        var api = _f.ApiPlaceholder;    // headers + query
        var form = _f.FormPlaceholder;  // headers + body
        var vault = _f.Env["VAULT_DEMO_TOKEN"]; // headers, query, body
        var responses = new StringBuilder();
        var outcomes = new List<string>();
        using var client = _f.Client();

        async Task<HttpStatusCode> Send(string what, HttpRequestMessage request, params string[] expectedReasons)
        {
            using var response = await client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            responses.Append(response.StatusLine()).Append(response.Headers).Append(response.Content.Headers).Append(body).Append('\n');
            var reason = SecretsFixture.Reason(response);
            outcomes.Add($"{what}: {(int)response.StatusCode} {reason}");
            if (expectedReasons.Length > 0)
            {
                Assert.True(expectedReasons.Contains(reason), $"{what}: expected {string.Join("|", expectedReasons)}, got {(int)response.StatusCode} '{reason}': {body}");
            }

            return response.StatusCode;
        }

        foreach (var host in new[] { "localhost", "127.0.0.1" })
        {
            string Url(string path) => _f.HttpsUrl(path, host);

            // Name positions in the URL and headers: refused toward any host.
            await Send($"{host} query name", new HttpRequestMessage(HttpMethod.Get, Url($"/echo/q?{api}=1&{Uri.EscapeDataString(vault)}=2")), "placeholder-position");
            await Send($"{host} encoded query name", new HttpRequestMessage(HttpMethod.Get, Url($"/echo/q?x=1&{PercentAll(api)}=2")), "placeholder-position");
            await Send($"{host} path segment", new HttpRequestMessage(HttpMethod.Get, Url($"/echo/{api}/x")), "placeholder-position");
            await Send($"{host} encoded path segment", new HttpRequestMessage(HttpMethod.Get, Url($"/echo/{PercentAll(vault)}")), "placeholder-position");
            var headerName = new HttpRequestMessage(HttpMethod.Get, Url("/echo/h"));
            headerName.Headers.TryAddWithoutValidation("X-" + api, "1");
            await Send($"{host} header name", headerName, "placeholder-position");
            var cookie = new HttpRequestMessage(HttpMethod.Get, Url("/echo/c"));
            cookie.Headers.TryAddWithoutValidation("Cookie", $"a=1; {form}=2");
            await Send($"{host} cookie name", cookie, "placeholder-position");
            await Send($"{host} method", new HttpRequestMessage(new HttpMethod(api), Url("/echo/m")), "placeholder-position");

            // Body names (JSON key, form and multipart field names, a multipart file name) and a Basic user name:
            // whatever the proxy decides, no real value may come back or be recorded.
            await Send($"{host} json key", new HttpRequestMessage(HttpMethod.Post, Url("/echo/j"))
            {
                Content = new StringContent($"{{\"{form}\":\"v\",\"k\":{{\"{vault}\":1}}}}", Encoding.UTF8, "application/json"),
            });
            await Send($"{host} form field name", new HttpRequestMessage(HttpMethod.Post, Url("/echo/f"))
            {
                Content = new StringContent($"{form}=1&b={vault}", Encoding.UTF8, "application/x-www-form-urlencoded"),
            });
            var multipart = new MultipartFormDataContent("pgboundary");
            multipart.Add(new StringContent("v"), form);
            multipart.Add(new ByteArrayContent("file"u8.ToArray()), "upload", vault + ".txt");
            await Send($"{host} multipart names", new HttpRequestMessage(HttpMethod.Post, Url("/echo/mp")) { Content = multipart });
            var basicUser = new HttpRequestMessage(HttpMethod.Get, Url("/echo/b"));
            basicUser.Headers.TryAddWithoutValidation("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(vault + ":x")));
            await Send($"{host} basic user", basicUser);
        }

        // A fragment only travels in a hand-written request target (clients strip it): plain absolute-form to the proxy.
        var fragment = await RawAsync($"GET http://localhost:{_f.Origin.HttpPort}/echo/fr#{api} HTTP/1.1\r\nHost: localhost:{_f.Origin.HttpPort}\r\n\r\n");
        responses.Append(fragment);
        Assert.StartsWith("HTTP/1.1 4", fragment, StringComparison.Ordinal);
        var plainName = await RawAsync($"GET http://localhost:{_f.Origin.HttpPort}/echo/p?{api}=1 HTTP/1.1\r\nHost: localhost:{_f.Origin.HttpPort}\r\n\r\n");
        responses.Append(plainName);
        Assert.Contains("placeholder-position", plainName, StringComparison.Ordinal);

        var events = await _f.Proxy.EventsAsync();
        Assert.True(events.Count(e => e.GetProperty("kind").GetString() == "request") >= 24, string.Join("\n", outcomes));
        using var plain = new HttpClient();
        var metrics = await plain.GetStringAsync(_f.Proxy.AdminUrl + "/metrics");

        var leaks = new List<string>();
        leaks.AddRange(SecretForms.FoundIn(responses.ToString(), _f.AllRealValues).Select(l => "response " + l));
        leaks.AddRange(SecretForms.FoundIn(_f.Proxy.Output, _f.AllRealValues).Select(l => "log " + l));
        leaks.AddRange(events.SelectMany(e => SecretForms.FoundIn(e.GetRawText(), _f.AllRealValues)).Select(l => "event " + l));
        leaks.AddRange(SecretForms.FoundIn(metrics, _f.AllRealValues).Select(l => "metrics " + l));
        foreach (var file in Directory.EnumerateFiles(_f.Proxy.DataDirectory, "*", SearchOption.AllDirectories))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            leaks.AddRange(SecretForms.FoundIn(Encoding.Latin1.GetString(copy.ToArray()), _f.AllRealValues).Select(l => $"{Path.GetFileName(file)} {l}"));
        }

        Assert.True(leaks.Count == 0, "real values found: " + string.Join(", ", leaks.Distinct()) + "\n" + string.Join("\n", outcomes));

        // Placeholders are not recorded either: every name position that carried one is redacted in the events.
        var recorded = string.Join("\n", events.Select(e => e.GetRawText()));
        Assert.DoesNotContain(api, recorded, StringComparison.Ordinal);
        Assert.DoesNotContain(form, recorded, StringComparison.Ordinal);
        Assert.DoesNotContain(vault, recorded, StringComparison.Ordinal);
    }

    private static string PercentAll(string text) => string.Concat(Encoding.UTF8.GetBytes(text).Select(b => $"%{b:X2}"));

    private async Task<string> RawAsync(string request)
    {
        var proxy = new Uri(_f.Proxy.ProxyUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(proxy.Host, proxy.Port);
        await using var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var buffer = new byte[16384];
        var text = new StringBuilder();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                text.Append(Encoding.Latin1.GetString(buffer, 0, n));
                if (text.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) && text.ToString().Contains("ProxyGuard", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        return text.ToString();
    }
}

internal static class ResponseText
{
    public static string StatusLine(this HttpResponseMessage response) => $"{(int)response.StatusCode} {response.ReasonPhrase}\n";
}
