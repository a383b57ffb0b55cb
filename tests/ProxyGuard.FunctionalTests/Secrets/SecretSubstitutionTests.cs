using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>
/// Placeholders become real values only toward bound hosts and only in their locations; echoed real
/// values come back as placeholders; misuse and real values from the sandbox are denied before the
/// origin sees anything (SPEC 3 <c>secrets</c>, 4.4).
/// </summary>
[Collection("proxy")]
public sealed class SecretSubstitutionTests : IClassFixture<SecretsFixture>
{
    private readonly SecretsFixture _f;

    public SecretSubstitutionTests(SecretsFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Env_prints_placeholders_under_sandbox_env_names_and_never_a_real_value()
    {
        Assert.Equal(SecretsFixture.GitPlaceholder, _f.Env["GIT_TOKEN"]);
        Assert.StartsWith("PG_API_", _f.ApiPlaceholder, StringComparison.Ordinal);
        Assert.StartsWith("PG_FORM_", _f.FormPlaceholder, StringComparison.Ordinal);
        Assert.NotEqual(_f.ApiPlaceholder, _f.FormPlaceholder);

        // Even with the real values in its own environment, `proxyguard env` prints none of them.
        foreach (var format in new[] { "sh", "dotenv", "json" })
        {
            var result = await Cli.RunProgramAsync("dotnet",
                [ProxyProcess.DllPath, "env", "--policy", _f.Proxy.PolicyPath, "--proxy", _f.Proxy.ProxyUrl, "--format", format,
                    "--ca-dir", _f.Proxy.CaDirectory, "--data-dir", _f.Proxy.DataDirectory],
                _f.Dir.Path, _f.RealEnvironment);
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.Contains(_f.ApiPlaceholder, result.Stdout, StringComparison.Ordinal);
            Assert.Contains(_f.FormPlaceholder, result.Stdout, StringComparison.Ordinal);
            Assert.Contains(SecretsFixture.GitPlaceholder, result.Stdout, StringComparison.Ordinal);
            Assert.Empty(SecretForms.FoundIn(result.All, _f.RealValues));
        }
    }

    [Fact]
    public async Task Git_clone_with_placeholder_token_in_url_reaches_server_that_accepts_only_the_real_token()
    {
        var repo = Path.Combine(_f.Dir.Path, "repos", "demo.git");
        var work = Path.Combine(_f.Dir.Path, "git-work");
        Directory.CreateDirectory(work);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["init", "-q", "--bare", "-b", "main", repo], _f.Dir.Path, null)).ExitCode);
        var seed = Path.Combine(_f.Dir.Path, "git-seed");
        await Cli.RunProgramAsync("git", ["init", "-q", "-b", "main", seed], _f.Dir.Path, null);
        await File.WriteAllTextAsync(Path.Combine(seed, "README"), "cloned with a placeholder\n");
        var gitEnv = new Dictionary<string, string>
        {
            ["GIT_AUTHOR_NAME"] = "t", ["GIT_AUTHOR_EMAIL"] = "t@example.invalid", ["GIT_COMMITTER_NAME"] = "t", ["GIT_COMMITTER_EMAIL"] = "t@example.invalid",
        };
        await Cli.RunProgramAsync("git", ["-C", seed, "add", "."], _f.Dir.Path, gitEnv);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", seed, "commit", "-qm", "init"], _f.Dir.Path, gitEnv)).ExitCode);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", seed, "push", "-q", repo, "main"], _f.Dir.Path, gitEnv)).ExitCode);
        _f.Origin.GitRoot = Path.Combine(_f.Dir.Path, "repos");
        _f.Origin.GitPassword = _f.GitValue;
        try
        {
            var env = new Dictionary<string, string>(_f.Env) { ["GIT_TERMINAL_PROMPT"] = "0", ["GIT_ASKPASS"] = "/bin/false" };
            string Url(string token, string host = "localhost") => $"https://x-access-token:{token}@{host}:{_f.Origin.HttpsPort}/git/demo.git";

            // The server really checks the token: a wrong one is refused.
            var wrong = await Cli.RunProgramAsync("git", ["ls-remote", Url("not-the-token-0000000000")], work, env);
            Assert.NotEqual(0, wrong.ExitCode);

            var clone = await Cli.RunProgramAsync("git", ["clone", "-q", Url(_f.GitPlaceholderFromEnv), Path.Combine(work, "clone")], work, env);
            Assert.True(clone.ExitCode == 0, clone.All);
            Assert.Equal("cloned with a placeholder\n", await File.ReadAllTextAsync(Path.Combine(work, "clone", "README")));
            Assert.Contains(_f.Origin.ReceivedHeaders, h => h.TryGetValue("Authorization", out var auth)
                && auth == "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + _f.GitValue)));

            // The clone's config keeps the URL the sandbox gave: the placeholder, never the real token.
            var config = await File.ReadAllTextAsync(Path.Combine(work, "clone", ".git", "config"));
            Assert.Contains(SecretsFixture.GitPlaceholder, config, StringComparison.Ordinal);
            Assert.Empty(SecretForms.FoundIn(clone.All + config, _f.RealValues));

            // The same placeholder toward an unbound host (127.0.0.1 is allowed by the rule, not by the
            // secret). git's first request carries no credentials (it learns the scheme from the 401);
            // the retry with the placeholder is denied and never reaches the origin.
            var before = _f.Origin.ReceivedHeaders.Count;
            var misuse = await Cli.RunProgramAsync("git", ["ls-remote", Url(_f.GitPlaceholderFromEnv, "127.0.0.1")], work, env);
            Assert.NotEqual(0, misuse.ExitCode);
            Assert.Contains("403", misuse.All, StringComparison.Ordinal);
            Assert.DoesNotContain(_f.Origin.ReceivedHeaders.Skip(before), h => h.ContainsKey("Authorization"));
            await _f.Proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "secret-misuse"
                && e.GetProperty("host").GetString() == "127.0.0.1");
        }
        finally
        {
            _f.Origin.GitPassword = null;
        }
    }

    [Fact]
    public async Task Bearer_basic_custom_header_and_query_placeholders_arrive_real_and_echo_comes_back_as_placeholder()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl($"/echo/all?key={_f.ApiPlaceholder}&other=1"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _f.ApiPlaceholder);
        request.Headers.Add("X-Basic-Copy", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + _f.GitPlaceholderFromEnv)));
        request.Headers.Add("x-api-key", _f.FormPlaceholder);
        request.Headers.Add("X-Echo-Header", _f.ApiPlaceholder);
        var (response, body, originRequests) = await _f.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(1, originRequests);
        var received = _f.Origin.ReceivedHeaders.Last();
        Assert.Equal("Bearer " + _f.ApiValue, received["Authorization"]);
        Assert.Equal(_f.FormValue, received["x-api-key"]);
        Assert.Equal(_f.ApiValue, received["X-Echo-Header"]);
        Assert.Equal($"GET /echo/all?key={Uri.EscapeDataString(_f.ApiValue)}&other=1", _f.Origin.Received.Last());

        // What the sandbox got back: the origin echoed every real value; it sees placeholders only.
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));
        Assert.Equal(_f.ApiPlaceholder, string.Join(",", response.Headers.GetValues("X-Echoed")));
        using var doc = JsonDocument.Parse(body);
        var headers = doc.RootElement.GetProperty("headers");
        Assert.Equal("Bearer " + _f.ApiPlaceholder, headers.GetProperty("Authorization").GetString());
        Assert.Equal(_f.FormPlaceholder, headers.GetProperty("x-api-key").GetString());
        Assert.Contains(_f.ApiPlaceholder, doc.RootElement.GetProperty("target").GetString(), StringComparison.Ordinal);

        var injected = await _f.Proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() is { } p && p.StartsWith("/echo/all", StringComparison.Ordinal));
        Assert.Equal("allow", injected.GetProperty("decision").GetString());
        var names = injected.GetProperty("secretsInjected").EnumerateArray().Select(n => n.GetString()).Order().ToList();
        Assert.Equal(["api", "form"], names);
    }

    [Fact]
    public async Task Basic_authorization_password_placeholder_is_decoded_replaced_and_reencoded()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/basic"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + _f.GitPlaceholderFromEnv)));
        var (response, body, originRequests) = await _f.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(1, originRequests);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + _f.GitValue)),
            _f.Origin.ReceivedHeaders.Last()["Authorization"]);
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));
    }

    [Fact]
    public async Task Curl_bearer_placeholder_arrives_real_and_echo_is_scrubbed()
    {
        var result = await Cli.RunProgramAsync("curl",
            ["-sS", "--fail", "-D", "-", "-H", $"Authorization: Bearer {_f.ApiPlaceholder}", "-H", $"X-Echo-Header: token {_f.ApiPlaceholder}",
                _f.HttpsUrl("/echo/curl-secret")],
            _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Equal("Bearer " + _f.ApiValue, _f.Origin.ReceivedHeaders.Last()["Authorization"]);
        Assert.Contains($"x-echoed: token {_f.ApiPlaceholder}", result.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"Bearer {_f.ApiPlaceholder}", result.Stdout, StringComparison.Ordinal);
        Assert.Empty(SecretForms.FoundIn(result.All, _f.RealValues));
    }

    [Theory]
    [InlineData("gzip", true)]
    [InlineData("deflate", true)]
    [InlineData("br", true)]
    [InlineData("gzip", false)]
    public async Task Compressed_response_is_decoded_and_scrubbed(string encoding, bool withPlaceholder)
    {
        _f.Compressing.Known = _f.FormValue;
        var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Compressing.Port}/{encoding}");
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip, deflate, br");
        if (withPlaceholder)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _f.ApiPlaceholder);
        }

        using var client = _f.Client();
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Empty(response.Content.Headers.ContentEncoding);
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));
        using var doc = JsonDocument.Parse(body);
        Assert.Equal(_f.FormPlaceholder, doc.RootElement.GetProperty("known").GetString());
        Assert.Equal(withPlaceholder ? "Bearer " + _f.ApiPlaceholder : string.Empty, doc.RootElement.GetProperty("authorization").GetString());
    }

    [Theory]
    [InlineData("application/json", "{\"token\":\"{0}\",\"n\":1}")]
    [InlineData("application/x-www-form-urlencoded", "a=1&token={0}&b=2")]
    [InlineData("text/plain", "token {0} end")]
    public async Task Body_placeholder_is_substituted_when_opted_in_and_content_length_reframed(string contentType, string template)
    {
        var sent = template.Replace("{0}", _f.FormPlaceholder, StringComparison.Ordinal);
        var expected = Encoding.UTF8.GetBytes(template.Replace("{0}", _f.FormValue, StringComparison.Ordinal));
        var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/body"))
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes(sent)),
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var (response, body, originRequests) = await _f.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(1, originRequests);
        using var doc = JsonDocument.Parse(body);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(expected)).ToLowerInvariant(), doc.RootElement.GetProperty("bodySha256").GetString());
        Assert.Equal(expected.Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _f.Origin.ReceivedHeaders.Last()["Content-Length"]);
        Assert.Equal(sent, doc.RootElement.GetProperty("body").GetString());
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));
    }

    public static TheoryData<string> UnboundHosts => new() { "127.0.0.1", "origin.test" };

    [Theory]
    [MemberData(nameof(UnboundHosts))]
    public async Task Placeholder_toward_unbound_host_is_denied_and_origin_receives_nothing(string host)
    {
        var bearer = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/misuse", host));
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _f.ApiPlaceholder);
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-misuse", await _f.SendAsync(bearer));

        var query = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl($"/echo/misuse?key={_f.ApiPlaceholder}", host));
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-misuse", await _f.SendAsync(query));

        var body = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/misuse", host)) { Content = new StringContent("t=" + _f.FormPlaceholder) };
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-misuse", await _f.SendAsync(body));

        // Plain http toward the unbound host too (a placeholder never travels over plain http).
        var plain = new HttpRequestMessage(HttpMethod.Get, _f.HttpUrl("/echo/misuse-plain", host));
        plain.Headers.Add("x-api-key", _f.GitPlaceholderFromEnv);
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-plain-http", await _f.SendAsync(plain));

        var denied = await _f.Proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "secret-misuse"
            && e.GetProperty("host").GetString() == host);
        Assert.Equal("deny", denied.GetProperty("decision").GetString());
        Assert.Empty(denied.GetProperty("secretsInjected").EnumerateArray());
    }

    [Fact]
    public async Task Placeholder_in_a_location_the_secret_does_not_allow_is_denied()
    {
        // api is not opted in for bodies (a token pasted into a prompt).
        var body = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/prompt"))
        {
            Content = new StringContent("{\"prompt\":\"my token is " + _f.ApiPlaceholder + "\"}", Encoding.UTF8, "application/json"),
        };
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-misuse", await _f.SendAsync(body));

        // git is headers only: not in the query.
        var query = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl($"/echo/q?t={_f.GitPlaceholderFromEnv}"));
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-misuse", await _f.SendAsync(query));

        // Never in the path: a position that is never substituted has its own reason.
        var path = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl($"/echo/{_f.ApiPlaceholder}/x"));
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "placeholder-position", await _f.SendAsync(path));
    }

    public static TheoryData<string, string> RealValueForms => new()
    {
        { "localhost", "bearer-raw" },
        { "localhost", "basic-base64" },
        { "localhost", "query-urlencoded" },
        { "localhost", "body-raw" },
        { "localhost", "header-base64url" },
        { "127.0.0.1", "bearer-raw" },
        { "origin.test", "query-urlencoded" },
        { "origin.test", "basic-base64" },
    };

    [Theory]
    [MemberData(nameof(RealValueForms))]
    public async Task Real_value_sent_by_the_sandbox_is_denied_and_origin_receives_nothing(string host, string form)
    {
        var value = form.StartsWith("basic", StringComparison.Ordinal) ? _f.GitValue : _f.ApiValue;
        var request = new HttpRequestMessage(form.StartsWith("body", StringComparison.Ordinal) ? HttpMethod.Post : HttpMethod.Get,
            _f.HttpsUrl(form.StartsWith("query", StringComparison.Ordinal) ? $"/echo/real?k={Uri.EscapeDataString(value)}" : "/echo/real", host));
        switch (form)
        {
            case "bearer-raw":
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + value);
                break;
            case "basic-base64":
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + value)));
                break;
            case "header-base64url":
                request.Headers.Add("X-Data", "blob." + Convert.ToBase64String(Encoding.UTF8.GetBytes("prefix:" + value + ":suffix")).TrimEnd('=').Replace('+', '-').Replace('/', '_'));
                break;
            case "body-raw":
                request.Content = new StringContent("here it is: " + value);
                break;
        }

        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-real-value", await _f.SendAsync(request));
        var denied = await _f.Proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "secret-real-value");
        Assert.Empty(SecretForms.FoundIn(denied.GetRawText(), _f.RealValues));
    }
}
