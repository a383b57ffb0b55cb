using System.Diagnostics;
using System.Net;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Secrets;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 3 (issues 14/15): attacks on the secret gate's one-pass placeholder prefilter (substitution skips
/// the head when the gate sees no placeholder) and on the request path's CPU bounds. Each test describes the
/// expected behaviour and fails on the snapshot it was written against (7cd24b7).
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound3Tests : IClassFixture<SecretsFixture>
{
    private readonly SecretsFixture _f;

    public RedTeamRound3Tests(SecretsFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>
    /// Basic credentials carrying a placeholder, as the substitutor reads them but the gate's prefilter does not:
    /// spaces (or tabs) inside the base64, and either no '=' padding or a tab after "Basic". .NET's base64 decoder
    /// skips the whitespace and the substitutor pads, so the substitutor would substitute or refuse; the gate's
    /// matcher sees base64 through line breaks only and decodes Basic only after "Basic " with padding, so it finds
    /// no placeholder and the substitution stage skips the head.
    /// </summary>
    private string SpreadBasic(string variant)
    {
        var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + _f.GitPlaceholderFromEnv));
        var (prefix, separator) = variant == "tab" ? ("Basic\t", "\t") : ("Basic ", " ");
        if (variant != "tab")
        {
            b64 = b64.TrimEnd('=');
        }

        var builder = new StringBuilder();
        var separators = 0;
        for (var i = 0; i < b64.Length; i++)
        {
            if (i > 0 && i % 3 == 0)
            {
                builder.Append(separator);
                separators++;
            }

            builder.Append(b64[i]);
        }

        // A multiple of four separators keeps the substitutor's padding arithmetic right.
        var text = builder.ToString();
        var at = text.IndexOf(separator, StringComparison.Ordinal);
        text = text.Insert(at, string.Concat(Enumerable.Repeat(separator, (4 - (separators % 4)) % 4)));
        return prefix + text;
    }

    /// <summary>
    /// FINDING R3-1a (low/medium, security: missed refusal): the git placeholder (bound to localhost, headers only) in
    /// whitespace-spread Basic credentials toward 127.0.0.1 (not bound) must be refused with secret-misuse as the
    /// plain form is. On 7cd24b7 it is forwarded: the origin receives the placeholder, no refusal, no event.
    /// </summary>
    [Theory]
    [InlineData("spaces-unpadded")]
    [InlineData("tab")]
    public async Task Whitespace_spread_Basic_placeholder_toward_an_unbound_host_is_refused(string variant)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/r3-unbound-" + variant, "127.0.0.1"));
        Assert.True(request.Headers.TryAddWithoutValidation("Authorization", SpreadBasic(variant)));
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-misuse", await _f.SendAsync(request));
    }

    /// <summary>
    /// FINDING R3-1b (low/medium, security: missed refusal): the same credentials toward the bound host over plain
    /// HTTP must be refused with secret-plain-http (git does not opt in to plain HTTP). On 7cd24b7 they are forwarded.
    /// </summary>
    [Theory]
    [InlineData("spaces-unpadded")]
    [InlineData("tab")]
    public async Task Whitespace_spread_Basic_placeholder_toward_plain_http_is_refused(string variant)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpUrl("/echo/r3-plain-" + variant));
        Assert.True(request.Headers.TryAddWithoutValidation("Authorization", SpreadBasic(variant)));
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "secret-plain-http", await _f.SendAsync(request));
    }

    /// <summary>
    /// FINDING R3-1c (low, functional): toward the bound host over TLS the substitutor would substitute these
    /// credentials (it does when the head carries the placeholder elsewhere too); alone, the origin receives the
    /// placeholder. Either substitute or refuse; never forward the placeholder silently.
    /// </summary>
    [Theory]
    [InlineData("spaces-unpadded")]
    [InlineData("tab")]
    public async Task Whitespace_spread_Basic_placeholder_toward_the_bound_host_is_not_forwarded_unsubstituted(string variant)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/r3-bound-" + variant));
        Assert.True(request.Headers.TryAddWithoutValidation("Authorization", SpreadBasic(variant)));
        var (response, body, originRequests) = await _f.SendAsync(request);
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));
        if (originRequests == 0)
        {
            return; // refused: acceptable
        }

        var received = _f.Origin.ReceivedHeaders.Last()["Authorization"];
        var parameter = string.Concat(received.Trim()[6..].Where(c => c is not (' ' or '\t')));
        var credentials = Encoding.UTF8.GetString(Convert.FromBase64String(parameter.PadRight((parameter.Length + 3) / 4 * 4, '=')));
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.DoesNotContain(_f.GitPlaceholderFromEnv, credentials, StringComparison.Ordinal);
    }

    /// <summary>
    /// Control for R3-1 (passes on 7cd24b7): with a plain placeholder elsewhere in the head the gate's prefilter fires,
    /// the substitution stage reads the head, and the same whitespace-spread Basic credentials ARE substituted. The
    /// substitutor handles them; only the prefilter (SecretGateStage: matcher + HeadExtras' DecodeBasic) misses them.
    /// </summary>
    [Theory]
    [InlineData("spaces-unpadded")]
    [InlineData("tab")]
    public async Task Control_whitespace_spread_Basic_is_substituted_when_the_head_carries_another_placeholder(string variant)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/r3-control-" + variant));
        Assert.True(request.Headers.TryAddWithoutValidation("Authorization", SpreadBasic(variant)));
        request.Headers.Add("X-Api", _f.ApiPlaceholder);
        var (response, body, originRequests) = await _f.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.OK && originRequests == 1, body);
        var received = _f.Origin.ReceivedHeaders.Last()["Authorization"];
        var credentials = Encoding.UTF8.GetString(Convert.FromBase64String(received.Trim()[6..]));
        Assert.True(credentials == "user:" + _f.GitValue, "substituted credentials expected");
    }

    /// <summary>
    /// FINDING R3-2 (medium, CPU exhaustion with a small input): the substitution stage's multipart name-position
    /// check (ValuePositions.InMultipartHeaders) searches the whole rest of the body for "\r\n\r\n" and "\n\n" at
    /// every part delimiter, and compares each placeholder match with every part: quadratic in the body and outside
    /// the per-request scan budget. One placeholder in a ~1 MiB multipart body of tiny parts costs seconds of CPU
    /// (unit, quiet machine: 0.96 MB 0.94 s, 1.92 MB 3.5 s; through the proxy 0.96 MB took 1.6-1.9 s; the default
    /// max_body of 8 MiB extrapolates to about a minute of CPU per request). Expected: linear, well under a second.
    /// </summary>
    [Fact]
    public async Task Multipart_body_with_many_parts_and_a_placeholder_is_decided_in_bounded_time()
    {
        var builder = new StringBuilder();
        builder.Append("--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\n").Append(_f.FormPlaceholder).Append("\r\n");
        for (var k = 0; k < 64_000; k++)
        {
            builder.Append("--b\r\nX:1\r\n\r\nv\r\n");
        }

        builder.Append("--b--\r\n");
        var bytes = Encoding.ASCII.GetBytes(builder.ToString());
        Assert.True(bytes.Length < 1_000_000);

        // Warm up the path with a small body first.
        var warm = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/r3-mp-warm"))
        {
            Content = new ByteArrayContent(Encoding.ASCII.GetBytes("--b\r\nX:1\r\n\r\n" + _f.FormPlaceholder + "\r\n--b--\r\n")),
        };
        warm.Content.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=b");
        await _f.SendAsync(warm);

        var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/r3-mp")) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=b");
        var watch = Stopwatch.StartNew();
        var (response, body, _) = await _f.SendAsync(request);
        watch.Stop();
        Assert.Empty(SecretForms.FoundIn(body, _f.RealValues));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1.5),
            $"a {bytes.Length}-byte multipart body with one placeholder took {watch.Elapsed.TotalMilliseconds:F0} ms ({(int)response.StatusCode})");
    }

    /// <summary>
    /// FINDING R3-5 (low, name position): a JSON body that lenient parsers (Newtonsoft.Json, JSON5, System.Text.Json
    /// with comments) read differently from strict JSON: a string followed by a comment, an unquoted or single-quoted
    /// key. The form secret (headers and body, bound to localhost) in such a body toward its bound host is refused
    /// with placeholder-position and nothing reaches the origin; on 7cd24b7 it was substituted into what the API
    /// reads as a property name. Variants: a lenient body whose placeholder sits in a value (fail closed: the body is
    /// not strict JSON), nesting, and a placeholder in every position of a lenient document.
    /// </summary>
    [Theory]
    [InlineData("{\"PH\"/*c*/:1}")]
    [InlineData("{\"PH\"//c\n:1}")]
    [InlineData("{PH:1}")]
    [InlineData("{'PH':1}")]
    [InlineData("{\"a\":{\"b\":[{PH:1}]}}")]
    [InlineData("{\"a\":\"PH\",}")]
    [InlineData("{\"a\":'PH'}")]
    [InlineData("/* note */ {\"a\":\"PH\"}")]
    [InlineData("{\"a\":\"PH\"} // trailing")]
    [InlineData("{\"a\":\"x\",\n\"PH\"\n/**/ : \"PH\", c: [\"PH\"]}")]
    public async Task A_placeholder_in_a_lenient_json_body_is_refused(string template)
    {
        var body = template.Replace("PH", _f.FormPlaceholder, StringComparison.Ordinal);
        var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/r3-lenient"))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        SecretsFixture.AssertDenied(HttpStatusCode.Forbidden, "placeholder-position", await _f.SendAsync(request));
    }

    /// <summary>
    /// R3-5 control and variants: strict JSON (nested, NDJSON, a JSON text sequence, about 1 MiB with the placeholder
    /// deep inside) carrying the placeholder in string values is still substituted, in bounded time.
    /// </summary>
    [Theory]
    [InlineData("nested", "application/json")]
    [InlineData("ndjson", "application/x-ndjson")]
    [InlineData("json-seq", "application/json-seq")]
    [InlineData("large", "application/json")]
    public async Task A_placeholder_in_a_strict_json_value_is_substituted(string shape, string type)
    {
        var ph = _f.FormPlaceholder;
        var body = shape switch
        {
            "nested" => $"\uFEFF{{\"a\":[1,-2.5e3,true,null,{{\"b\":\"x {ph} y\"}}],\"c\":\"\\\"{ph}\\u0041\"}}",
            "ndjson" => $"{{\"a\":\"{ph}\"}}\n{{\"b\":[\"{ph}\"]}}\n",
            "json-seq" => $"\u001e{{\"a\":\"{ph}\"}}\n\u001e[\"{ph}\"]\n",
            _ => "{\"items\":[" + string.Join(",", Enumerable.Range(0, 30_000).Select(k => $"{{\"k\":{k},\"v\":\"item {k}\"}}")) + $"],\"deep\":{new string('[', 500)}\"{ph}\"{new string(']', 500)}}}",
        };
        var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/r3-strict-" + shape)) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
        var watch = Stopwatch.StartNew();
        var (response, echoed, originRequests) = await _f.SendAsync(request);
        watch.Stop();
        Assert.True(response.StatusCode == HttpStatusCode.OK && originRequests == 1, $"{(int)response.StatusCode} {SecretsFixture.Reason(response)}");
        var expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(body.Replace(ph, _f.FormValue, StringComparison.Ordinal)))).ToLowerInvariant();
        Assert.Equal(expected, System.Text.Json.JsonDocument.Parse(echoed).RootElement.GetProperty("bodySha256").GetString());
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{body.Length} bytes took {watch.Elapsed.TotalMilliseconds:F0} ms");
    }

    /// <summary>
    /// R3-3, request side: a real value the sandbox holds, sent as base64 inside a JSON string with the escapes a JSON
    /// encoder writes (\n every 4 characters, \/ and \u002B), or percent-encoded base64 wrapped in a query, never
    /// leaves toward an unbound host: refused (secret-real-value, or content-finding when the scanner sees it first).
    /// </summary>
    [Theory]
    [InlineData("json-body")]
    [InlineData("query")]
    public async Task A_real_value_in_escaped_base64_never_leaves_toward_an_unbound_host(string carrier)
    {
        var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + _f.FormValue + "?>"));
        var wrapped = string.Join("\\n", b64.Chunk(4).Select(c => new string(c)));
        var request = carrier == "json-body"
            ? new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/r3-b64-out", "127.0.0.1"))
            {
                Content = new StringContent("{\"blob\":\"" + wrapped.Replace("/", "\\/", StringComparison.Ordinal).Replace("+", "\\u002B", StringComparison.Ordinal) + "\"}", Encoding.UTF8, "application/json"),
            }
            : new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/r3-b64-out?blob=" + Uri.EscapeDataString(wrapped.Replace("\\n", "\n", StringComparison.Ordinal)), "127.0.0.1"));
        var (response, body, originRequests) = await _f.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden && originRequests == 0,
            $"{carrier}: {(int)response.StatusCode} {SecretsFixture.Reason(response)}, origin received {originRequests}: {body}");
    }
}

/// <summary>
/// Red team round 3, response side: a bound API returns a value it holds (it legitimately received it after
/// substitution, e.g. a blob created with the token as content) in an encoding the shared matcher does not see
/// through.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound3ResponseTests : IClassFixture<HostileOriginFixture>
{
    private readonly HostileOriginFixture _f;

    public RedTeamRound3ResponseTests(HostileOriginFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>
    /// FINDING R3-3 (medium, real value reaches the sandbox): base64 inside a JSON string with JSON escapes in it
    /// (GitHub's contents/blobs API wraps base64 at 60 columns with the two-character escape \n; PHP writes '/' as
    /// \/; System.Text.Json's default encoder writes '+' as \u002B) is not scrubbed: the base64 scan runs on the raw
    /// bytes only. And a value JSON-escaped then percent-encoded (JSON state in a redirect URL) is not scrubbed: the
    /// twice-escaped pass only handles JSON-in-JSON and percent-twice.
    /// </summary>
    [Theory]
    [InlineData("github-base64")]
    [InlineData("url-of-json")]
    public async Task A_bound_api_returning_the_value_in_a_two_level_encoding_is_scrubbed(string mode)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/{mode}");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var decoded = new StringBuilder();
        if (mode == "github-base64")
        {
            var content = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("content").GetString()!;
            try
            {
                decoded.Append(Encoding.UTF8.GetString(Convert.FromBase64String(content.Replace("\n", "", StringComparison.Ordinal))));
            }
            catch (FormatException)
            {
                // The scrubber put the placeholder where the value's base64 was: the rest no longer decodes.
                Assert.Contains(_f.Placeholder, content, StringComparison.Ordinal);
                decoded.Append(content);
            }
        }
        else
        {
            var location = response.Headers.Location?.OriginalString ?? string.Empty;
            var state = Uri.UnescapeDataString(location[(location.IndexOf("state=", StringComparison.Ordinal) + 6)..]);
            decoded.Append(System.Text.Json.JsonDocument.Parse(state).RootElement.GetProperty("t").GetString());
        }

        Assert.False(decoded.ToString().Contains(_f.Value, StringComparison.Ordinal), $"{mode}: the real value reached the sandbox ({(int)response.StatusCode})");
    }

    /// <summary>
    /// FINDING R3-4 (high, real value reaches the sandbox): the response scrubber matches whole values within one
    /// response; byte ranges are forwarded as asked. A bound API that holds the value (it received it after
    /// substitution: a blob, a file, an object, a paste created with the placeholder in a substituted body) and serves
    /// byte ranges (static files, object stores, raw-content endpoints) gives it back in slices shorter than the value,
    /// none of which is a match: the sandbox reassembles the real value. Expected: with secrets configured, Range (and
    /// If-Range) is dropped from requests toward hosts a secret is bound to (or a partial response that could cut a
    /// value is refused), so what comes back is scrubbed whole.
    /// </summary>
    [Fact]
    public async Task A_bound_api_serving_byte_ranges_does_not_hand_the_value_back_in_slices()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        var assembled = new List<byte>();
        for (var start = 0; start < 512; start += 8)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/range");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
            request.Headers.TryAddWithoutValidation("Range", $"bytes={start}-{start + 7}");
            using var response = await client.SendAsync(request);
            var slice = await response.Content.ReadAsByteArrayAsync();
            if (response.StatusCode != HttpStatusCode.PartialContent)
            {
                // The proxy ignored or refused the range: whatever came back must be clean, and there is nothing to assemble.
                Assert.False(Encoding.UTF8.GetString(slice).Contains(_f.Value, StringComparison.Ordinal), "the real value reached the sandbox whole");
                return;
            }

            assembled.AddRange(slice);
            if (slice.Length < 8)
            {
                break;
            }
        }

        Assert.False(Encoding.UTF8.GetString([.. assembled]).Contains(_f.Value, StringComparison.Ordinal),
            "the real value reached the sandbox in byte-range slices");
    }

    /// <summary>
    /// R3-4 variants: Range and If-Range never reach a bound host (the origin answers the whole document, scrubbed),
    /// also with several ranges, a suffix range and the legacy Request-Range spelling.
    /// </summary>
    [Theory]
    [InlineData("Range", "bytes=0-7")]
    [InlineData("Range", "bytes=-8")]
    [InlineData("Range", "bytes=0-7,8-15,16-23")]
    [InlineData("Request-Range", "bytes=0-7")]
    public async Task Range_headers_toward_a_bound_host_are_removed_and_the_whole_response_is_scrubbed(string header, string value)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/range");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
        request.Headers.TryAddWithoutValidation(header, value);
        request.Headers.TryAddWithoutValidation("If-Range", "\"etag\"");
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(_f.Placeholder, body, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.Value, body, StringComparison.Ordinal);
    }

    /// <summary>
    /// R3-4: a bound host that answers 206 although no range was asked for (or the proxy removed it) is refused with
    /// response-partial; no slice reaches the sandbox, whatever the offset.
    /// </summary>
    [Fact]
    public async Task A_partial_response_from_a_bound_host_is_refused()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        var assembled = new StringBuilder();
        for (var start = 0; start < 80; start += 8)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/partial?s={start}");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
            Assert.Equal("response-partial", response.Headers.TryGetValues("X-ProxyGuard-Reason", out var reasons) ? reasons.Single() : null);
            assembled.Append(await response.Content.ReadAsStringAsync());
        }

        Assert.DoesNotContain("stored", assembled.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// R3-3 variants: HTML inside a JSON string (\u0026quot; \u0026amp;...) and wrapped base64 percent-encoded in a URL reach
    /// the sandbox scrubbed: decoding the two levels of what arrives never shows the value.
    /// </summary>
    [Theory]
    [InlineData("html-in-json")]
    [InlineData("b64-in-url")]
    public async Task Other_two_level_encodings_from_a_bound_api_are_scrubbed(string mode)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{_f.Origin.Port}/{mode}");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.Placeholder);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        string decoded;
        if (mode == "html-in-json")
        {
            decoded = WebUtility.HtmlDecode(System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("html").GetString()!);
        }
        else
        {
            var location = response.Headers.Location?.OriginalString ?? string.Empty;
            var blob = Uri.UnescapeDataString(location[(location.IndexOf("blob=", StringComparison.Ordinal) + 5)..]).Replace("\n", "", StringComparison.Ordinal);
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(blob));
            }
            catch (FormatException)
            {
                decoded = blob; // the placeholder in place of the value's core: no longer base64
            }
        }

        Assert.False(decoded.Contains(_f.Value, StringComparison.Ordinal), $"{mode}: the real value reached the sandbox ({(int)response.StatusCode}): {decoded}");
    }
}
