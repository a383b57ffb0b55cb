using System.Net;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;
using ProxyGuard.FunctionalTests.Secrets;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 4 (issue 15, after this session's merges): attacks through the running proxy on what changed, the
/// request path's normal-form shortcuts first. Each finding's test failed on the build it was written against (4379106)
/// because the attack worked, unless it says otherwise.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound4Tests : IClassFixture<PolicyOrigin>
{
    private readonly PolicyOrigin _o;

    public RedTeamRound4Tests(PolicyOrigin origin)
    {
        _o = origin;
    }

    /// <summary>
    /// FINDING R4-1 (medium, policy bypass toward Java-style servers): a path rule allows <c>/echo/public/**</c>. Tomcat,
    /// Jetty and older Spring strip path parameters (<c>;...</c>) from each segment before they resolve dot segments,
    /// so <c>/echo/public/..;/private/x</c> is <c>/echo/private/x</c> to them and <c>/echo/public/;/../private/x</c>
    /// too (the empty segment is merged). The proxy read <c>..;</c> and <c>;</c> as ordinary names (the fast path and
    /// the full normaliser agree), matched the allow rule and forwarded both. Expected: the path is ambiguous, matches
    /// no allow rule with paths, and never reaches the origin.
    /// </summary>
    [Theory]
    [InlineData("/echo/public/..;/private/r4-1a")]
    [InlineData("/echo/public/..;jsessionid=1/private/r4-1b")]
    [InlineData("/echo/public/;/../private/r4-1c")]
    [InlineData("/echo/public/%2e%2e;/private/r4-1d")]
    [InlineData("/echo/public/.;/../private/r4-1e")]
    public async Task A_dot_segment_with_path_parameters_matches_no_allow_rule_with_paths(string path)
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, """
            rules:
              - name: public
                hosts: [localhost]
                ports: [{HTTPS}, {HTTP}]
                paths: ["/echo/public/**"]
                action: allow
            """);
        var marker = path[(path.LastIndexOf('/') + 1)..];
        foreach (var url in new[] { _o.HttpsUrl(path), _o.HttpUrl(path) })
        {
            var result = await PolicyClients.CurlAsync(proxy, "GET", url);
            Assert.True(result.Status == (int)HttpStatusCode.Forbidden, $"{url}: {result}");
            Assert.False(_o.OriginSaw(marker), $"{url}: the origin received the request");
        }

        // Control: the same rule still serves an ordinary path below it.
        var control = await PolicyClients.CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/public/a/r4-1-control"));
        Assert.True(control.Status == (int)HttpStatusCode.OK, control.ToString());
    }

    /// <summary>
    /// FINDING R4-1, deny side: a deny rule on <c>/echo/private/**</c> before an allow for the host. Parameters on an
    /// ordinary name (<c>/echo/private;x/y</c>) are dropped by the same servers, which serve <c>/echo/private/y</c>;
    /// the proxy's path did not match the deny glob and the allow forwarded it. Expected: any path parameter makes the
    /// path ambiguous, which matches the deny rule (fail closed).
    /// </summary>
    [Theory]
    [InlineData("/echo/private;x/r4-1f")]
    [InlineData("/echo;/private/r4-1g")]
    [InlineData("/echo/private;jsessionid=0/r4-1h")]
    public async Task Path_parameters_on_a_name_do_not_escape_a_deny_rule(string path)
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, """
            rules:
              - name: private
                hosts: [localhost]
                ports: [{HTTPS}, {HTTP}]
                paths: ["/echo/private/**"]
                action: deny
              - name: rest
                hosts: [localhost]
                ports: [{HTTPS}, {HTTP}]
                action: allow
            """);
        var marker = path[(path.LastIndexOf('/') + 1)..];
        var result = await PolicyClients.CurlAsync(proxy, "GET", _o.HttpsUrl(path));
        Assert.True(result.Status == (int)HttpStatusCode.Forbidden, $"{path}: {result}");
        Assert.False(_o.OriginSaw(marker), $"{path}: the origin received the request");
        var control = await PolicyClients.CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/public/r4-1-deny-control"));
        Assert.True(control.Status == (int)HttpStatusCode.OK, control.ToString());
    }
}

/// <summary>Round 4 against the response scrubber: a hostile (or merely ordinary) bound API hands the value back.</summary>
[Collection("proxy")]
public sealed class RedTeamRound4ResponseTests : IClassFixture<HostileOriginFixture>
{
    private readonly HostileOriginFixture _f;

    public RedTeamRound4ResponseTests(HostileOriginFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>
    /// FINDING R4-2 (medium, real value reaches the sandbox): base64 of an escaped value. A bound API returns a
    /// JWT-style token whose payload is JSON holding the value (JSON-escaped: the value has '"', '\\', '/', '+'),
    /// or a redirect whose OAuth-style state is base64 of a query string holding it percent-encoded. The matcher
    /// decodes base64 only of the raw value (and base64 under one escaping, not an escaping under base64), so
    /// neither is scrubbed and the sandbox decodes the real value. Typical API keys (letters, digits, '-', '_') are
    /// unchanged by JSON and percent escaping, so this needs a value with other characters (AWS secret keys have
    /// '/' and '+').
    /// </summary>
    [Theory]
    [InlineData("jwt-of-json")]
    [InlineData("b64-of-url")]
    public async Task A_bound_api_returning_base64_of_an_escaped_value_is_scrubbed(string mode)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/{mode}");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var token = mode == "jwt-of-json"
            ? System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("id_token").GetString()!.Split('.')[1]
            : (response.Headers.Location?.OriginalString ?? string.Empty).Split("state=")[^1];
        string decoded;
        try
        {
            var b64 = token.Replace('-', '+').Replace('_', '/');
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(b64.PadRight((b64.Length + 3) / 4 * 4, '=')));
        }
        catch (FormatException)
        {
            decoded = token; // the scrubber put the placeholder where the value's base64 was
        }

        string? value;
        try
        {
            value = mode == "jwt-of-json"
                ? System.Text.Json.JsonDocument.Parse(decoded).RootElement.GetProperty("tok").GetString()
                : Uri.UnescapeDataString(decoded);
        }
        catch (System.Text.Json.JsonException)
        {
            value = decoded; // the placeholder (base64 characters itself) turned the payload into something else
        }

        Assert.DoesNotContain(_f.Value, body + response.Headers.Location, StringComparison.Ordinal);
        Assert.False(value?.Contains(_f.Value, StringComparison.Ordinal) == true,
            $"{mode}: the real value reached the sandbox ({(int)response.StatusCode}): {decoded}");
    }
}

/// <summary>Round 4 against the request-side secret rules.</summary>
[Collection("proxy")]
public sealed class RedTeamRound4SecretTests : IClassFixture<SecretsFixture>
{
    private readonly SecretsFixture _f;

    public RedTeamRound4SecretTests(SecretsFixture fixture)
    {
        _f = fixture;
    }

    private HttpRequestMessage Post(string path, string body, string? contentType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body.Replace("PH", _f.FormPlaceholder, StringComparison.Ordinal)));
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        return new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl(path)) { Content = content };
    }

    /// <summary>
    /// FINDING R4-4 (low/medium, placeholder substituted into a name position): JSON sent without a JSON media type
    /// (no Content-Type, text/plain, application/octet-stream) was substituted anywhere, object keys included. Servers
    /// that parse the body as JSON whatever its type (FastAPI without a Content-Type, Flask's get_json(force=True),
    /// body parsers configured for any type) then receive the real value as a key name. Expected: a body that is
    /// strict JSON is held to the JSON rules whatever its declared type (a placeholder in a key is refused).
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("text/plain")]
    [InlineData("application/octet-stream")]
    public async Task A_placeholder_in_a_key_of_json_sent_with_another_media_type_is_refused(string? contentType)
    {
        foreach (var body in new[] { "{\"PH\":1}", " [ {\"a\":{\"PH\":\"x\"}} ]" })
        {
            SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "placeholder-position",
                await _f.SendAsync(Post("/echo/r4-4-" + (contentType ?? "none").Replace('/', '-'), body, contentType)));
        }
    }

    /// <summary>Control for R4-4: a placeholder in a value of such JSON, or in text that only starts like JSON, is still substituted.</summary>
    [Theory]
    [InlineData("{\"a\":\"PH\"}")]
    [InlineData("[INFO] token=PH")]
    [InlineData("{PH}")]
    public async Task A_placeholder_in_a_value_of_json_sent_as_text_is_substituted(string body)
    {
        var (response, echoed, originRequests) = await _f.SendAsync(Post("/echo/r4-4-control", body, "text/plain"));
        Assert.True(response.StatusCode == HttpStatusCode.OK && originRequests == 1, $"{(int)response.StatusCode} {SecretsFixture.Reason(response)}");
        var expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(body.Replace("PH", _f.FormValue, StringComparison.Ordinal)))).ToLowerInvariant();
        Assert.Equal(expected, System.Text.Json.JsonDocument.Parse(echoed).RootElement.GetProperty("bodySha256").GetString());
    }
}
