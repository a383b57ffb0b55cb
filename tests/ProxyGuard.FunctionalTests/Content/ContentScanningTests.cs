using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Content;

/// <summary>
/// SPEC 4.3 end to end: secrets hidden in every location and encoding are refused before anything reaches the
/// origin; redact and log rules; decompression bombs; body limits; exemptions.
/// </summary>
[Collection("proxy")]
public sealed class ContentScanningTests : IClassFixture<ContentFixture>, IDisposable
{
    private readonly ContentFixture _f;
    private readonly HttpClient _client;

    public ContentScanningTests(ContentFixture fixture)
    {
        _f = fixture;
        _client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
    }

    public void Dispose() => _client.Dispose();

    public static TheoryData<string> Encodings =>
    [
        "header", "header-name", "query", "query-percent", "body", "gzip", "deflate", "br", "gzip-br-stacked", "url-encoded",
        "form-encoded", "json-escapes", "multipart", "multipart-base64-part", "base64", "base64url",
        "base64-in-json-in-gzip", "aws-key-in-body", "pem-in-gzip-body",
    ];

    [Theory]
    [MemberData(nameof(Encodings))]
    public async Task A_secret_in_any_location_or_encoding_is_refused_and_the_origin_receives_nothing(string encoding)
    {
        // The same request shape with harmless text is forwarded: the encoding itself is accepted.
        var benign = Synthetic.Benign();
        var before = _f.Origin.Received.Count;
        using (var ok = await _client.SendAsync(Build(encoding, benign, "/echo/benign")))
        {
            Assert.True(ok.StatusCode == HttpStatusCode.OK, $"{encoding}: benign request got {(int)ok.StatusCode}: {await ok.Content.ReadAsStringAsync()}");
        }

        Assert.Equal(before + 1, _f.Origin.Received.Count);

        var secret = encoding switch
        {
            "aws-key-in-body" => Synthetic.AwsKeyId(),
            "pem-in-gzip-body" => Synthetic.PemPrivateKey(),
            _ => Synthetic.GitHubToken(),
        };
        before = _f.Origin.Received.Count;
        var path = "/echo/blocked-" + encoding;
        using var response = await _client.SendAsync(Build(encoding, secret, path));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{encoding}: got {(int)response.StatusCode}: {text}");
        Assert.Equal("deny", response.Headers.GetValues("X-ProxyGuard-Decision").Single());
        Assert.Equal("content-finding", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Equal(before, _f.Origin.Received.Count);
        Assert.DoesNotContain(secret.Trim(), text, StringComparison.Ordinal);

        // The event names the detector and the location, never the value.
        var e = await _f.Proxy.WaitForEventAsync(ev => PathOf(ev) is { } p && (p == path || p.StartsWith(path + "?", StringComparison.Ordinal)));
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        var finding = e.GetProperty("findings").EnumerateArray().First();
        Assert.Equal("deny", finding.GetProperty("action").GetString());
        Assert.Equal(encoding.StartsWith("header", StringComparison.Ordinal) ? "header" : encoding.StartsWith("query", StringComparison.Ordinal) ? "query" : "body",
            finding.GetProperty("location").GetString());
        var distinctive = secret.Contains('\n', StringComparison.Ordinal) ? secret.Split('\n')[1] : secret;
        Assert.DoesNotContain(distinctive, e.GetRawText(), StringComparison.Ordinal);
    }

    private HttpRequestMessage Build(string encoding, string value, string path)
    {
        var payload = "note=" + value;
        var bytes = Encoding.UTF8.GetBytes(payload);
        var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl(path));
        switch (encoding)
        {
            case "header":
                request.Headers.TryAddWithoutValidation("X-Api-Key", value);
                break;
            case "header-name":
                request.Headers.TryAddWithoutValidation("X-" + value, "1");
                break;
            case "query":
                request.RequestUri = new Uri(_f.HttpsUrl(path + "?a=1&key=" + Uri.EscapeDataString(value)));
                break;
            case "query-percent":
                request.RequestUri = new Uri(_f.HttpsUrl(path + "?key=" + Synthetic.PercentEncodeAll(value)));
                break;
            case "body":
            case "aws-key-in-body":
                request.Content = Bytes(bytes, "text/plain");
                break;
            case "gzip":
                request.Content = Bytes(Synthetic.Gzip(bytes), "text/plain", "gzip");
                break;
            case "deflate":
                request.Content = Bytes(Synthetic.Deflate(bytes), "text/plain", "deflate");
                break;
            case "br":
                request.Content = Bytes(Synthetic.Brotli(bytes), "text/plain", "br");
                break;
            case "gzip-br-stacked":
                // Content-Encoding lists codings in the order they were applied: gzip first, then br.
                request.Content = Bytes(Synthetic.Brotli(Synthetic.Gzip(bytes)), "text/plain", "gzip", "br");
                break;
            case "pem-in-gzip-body":
                request.Content = Bytes(Synthetic.Gzip(bytes), "application/octet-stream", "gzip");
                break;
            case "url-encoded":
                request.Content = Bytes(Encoding.ASCII.GetBytes("note=" + Synthetic.PercentEncodeAll(value)), "text/plain");
                break;
            case "form-encoded":
                request.Content = Bytes(Encoding.ASCII.GetBytes("a=1&note=" + Synthetic.PercentEncodeAll(value).Replace("%20", "+", StringComparison.Ordinal) + "&b=2"),
                    "application/x-www-form-urlencoded");
                break;
            case "json-escapes":
                // \u0067hp_… : the first letter (and every other) escaped.
                request.Content = Bytes(Encoding.ASCII.GetBytes("{\"note\":\"" + Synthetic.JsonEscapeAll(value) + "\"}"), "application/json");
                break;
            case "multipart":
                request.Content = Multipart([("comment", "text/plain", null, "hello"), ("note", "text/plain", null, payload)]);
                break;
            case "multipart-base64-part":
                // MIME base64 with short lines: the token spans several lines, so only decoding the part as a whole finds it.
                var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("prefix to shift alignment " + payload));
                var wrapped = string.Join("\r\n", b64.Chunk(16).Select(c => new string(c)));
                request.Content = Multipart([("comment", "text/plain", null, "hello"), ("file", "application/octet-stream", "base64", wrapped)]);
                break;
            case "base64":
                request.Content = Bytes(Encoding.ASCII.GetBytes("data=" + Convert.ToBase64String(Encoding.UTF8.GetBytes("some leading text, " + payload))), "text/plain");
                break;
            case "base64url":
                request.Content = Bytes(Encoding.ASCII.GetBytes("data=" + Synthetic.Base64Url(Encoding.UTF8.GetBytes("some leading text?>, " + payload + "??>>"))), "text/plain");
                break;
            case "base64-in-json-in-gzip":
                var json = "{\"data\":\"" + Convert.ToBase64String(Encoding.UTF8.GetBytes("some leading text, " + payload)) + "\"}";
                request.Content = Bytes(Synthetic.Gzip(Encoding.UTF8.GetBytes(json)), "application/json", "gzip");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(encoding), encoding, null);
        }

        return request;
    }

    private static ByteArrayContent Bytes(byte[] body, string contentType, params string[] contentEncodings)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        foreach (var coding in contentEncodings)
        {
            content.Headers.ContentEncoding.Add(coding);
        }

        return content;
    }

    private static ByteArrayContent Multipart(IEnumerable<(string Name, string Type, string? TransferEncoding, string Body)> parts)
    {
        var boundary = "pg-" + Synthetic.Random("abcdefghijklmnopqrstuvwxyz0123456789", 16);
        var sb = new StringBuilder();
        foreach (var (name, type, transfer, body) in parts)
        {
            sb.Append("--").Append(boundary).Append("\r\n")
                .Append("Content-Disposition: form-data; name=\"").Append(name).Append("\"; filename=\"").Append(name).Append(".bin\"\r\n")
                .Append("Content-Type: ").Append(type).Append("\r\n");
            if (transfer is not null)
            {
                sb.Append("Content-Transfer-Encoding: ").Append(transfer).Append("\r\n");
            }

            sb.Append("\r\n").Append(body).Append("\r\n");
        }

        sb.Append("--").Append(boundary).Append("--\r\n");
        return Bytes(Encoding.ASCII.GetBytes(sb.ToString()), $"multipart/form-data; boundary={boundary}");
    }

    [Fact]
    public async Task A_secret_split_across_chunked_transfer_chunks_is_refused_and_the_origin_receives_nothing()
    {
        var token = Synthetic.GitHubToken();
        var body = Encoding.ASCII.GetBytes("{\"note\":\"" + token + "\"}");
        var cut = 9 + 12; // inside the token
        var pieces = new List<byte[]>
        {
            Encoding.ASCII.GetBytes($"POST /echo/chunked HTTP/1.1\r\nHost: localhost:{_f.Origin.HttpsPort}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
            Chunk(body[..cut]),
            Chunk(body[cut..]),
            Encoding.ASCII.GetBytes("0\r\n\r\n"),
        };
        var before = _f.Origin.Received.Count;
        var response = await RawProxyClient.SendAsync(_f.Proxy, "localhost", _f.Origin.HttpsPort, pieces);
        Assert.True(response.Status == 403, response.Raw);
        Assert.Equal("content-finding", response.Header("X-ProxyGuard-Reason"));
        Assert.Equal("github-token", response.Header("X-ProxyGuard-Rule"));
        Assert.Equal(before, _f.Origin.Received.Count);

        // Control: the same chunked framing without a secret is forwarded and arrives whole.
        var word = Synthetic.Benign();
        var harmless = Encoding.ASCII.GetBytes("{\"note\":\"" + word + "\"}");
        var ok = await RawProxyClient.SendAsync(_f.Proxy, "localhost", _f.Origin.HttpsPort,
            [pieces[0], Chunk(harmless[..cut]), Chunk(harmless[cut..]), pieces[3]]);
        Assert.True(ok.Status == 200, ok.Raw);
        Assert.Contains(word, ok.Body, StringComparison.Ordinal);
        Assert.Equal(before + 1, _f.Origin.Received.Count);
    }

    private static byte[] Chunk(byte[] data) =>
        [.. Encoding.ASCII.GetBytes($"{data.Length:x}\r\n"), .. data, .. "\r\n"u8.ToArray()];

    [Fact]
    public async Task An_http2_body_without_content_length_is_scanned_too()
    {
        using var h2 = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath, HttpVersion.Version20);
        var before = _f.Origin.Received.Count;
        var token = Synthetic.GitHubToken();
        using var content = new StreamContent(new NonSeekableStream(Encoding.ASCII.GetBytes("note=" + token)));
        using var response = await h2.PostAsync(_f.HttpsUrl("/echo/h2-stream"), content);
        Assert.Equal(new Version(2, 0), response.Version);
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("content-finding", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Equal(before, _f.Origin.Received.Count);
    }

    [Fact]
    public async Task A_credential_in_a_dns_label_of_the_connect_host_is_refused()
    {
        // Hex is the usual DNS exfiltration encoding; 80 hex characters span two labels.
        var hex = Convert.ToHexString(Encoding.ASCII.GetBytes(Synthetic.GitHubToken())).ToLowerInvariant();
        var host = $"{hex[..40]}.{hex[40..]}.origin.test";
        var before = _f.Origin.Received.Count;
        var (tcp, refusal) = await RawProxyClient.ConnectAsync(_f.Proxy, host, _f.Origin.HttpsPort);
        tcp.Dispose();
        Assert.NotNull(refusal);
        Assert.True(refusal.Status == 403, refusal.Raw);
        Assert.Equal("content-finding", refusal.Header("X-ProxyGuard-Reason"));
        Assert.Equal("github-token", refusal.Header("X-ProxyGuard-Rule"));

        // An absolute-form plain HTTP request to such a host is refused the same way.
        using var response = await _client.GetAsync($"http://{hex[..40]}.{hex[40..]}.origin.test:{_f.Origin.HttpPort}/echo/dns");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("content-finding", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Equal(before, _f.Origin.Received.Count);

        // Control: a plain (hex-free) subdomain is not a finding (it is refused by the rules instead).
        var (tcp2, other) = await RawProxyClient.ConnectAsync(_f.Proxy, "www.origin.test", _f.Origin.HttpsPort);
        tcp2.Dispose();
        Assert.NotNull(other);
        Assert.Equal("no-rule-allows-host-port", other.Header("X-ProxyGuard-Reason"));
    }

    [Theory]
    [InlineData("x-unknown-coding")]
    [InlineData("gzip")]
    public async Task A_body_that_cannot_be_decoded_is_denied_as_undecodable(string coding)
    {
        var before = _f.Origin.Received.Count;
        // For gzip: random bytes are not a gzip stream.
        using var content = Bytes(RandomNumberGenerator.GetBytes(4096), "application/octet-stream", coding);
        using var response = await _client.PostAsync(_f.HttpsUrl("/echo/undecodable"), content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"got {(int)response.StatusCode}: {text}");
        Assert.Equal("undecodable", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Equal(before, _f.Origin.Received.Count);
    }

    [Fact]
    public async Task A_redact_rule_forwards_the_body_with_the_match_replaced()
    {
        var token = Synthetic.AcmeRedactToken();
        var other = Synthetic.AcmeRedactToken();
        var json = $"{{\"key\":\"{token}\",\"n\":1,\"again\":\"x {other} y\"}}";
        using var content = Bytes(Synthetic.Gzip(Encoding.UTF8.GetBytes(json)), "application/json", "gzip");
        using var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/redact?k=" + token)) { Content = content };
        request.Headers.TryAddWithoutValidation("X-Acme", "Bearer " + token);
        using var response = await _client.SendAsync(request);
        var echoed = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, echoed);
        using var doc = JsonDocument.Parse(echoed);
        var root = doc.RootElement;

        // The origin got the identity-encoded body with both matches replaced, re-framed.
        Assert.Equal("{\"key\":\"[REDACTED:acme-redact]\",\"n\":1,\"again\":\"x [REDACTED:acme-redact] y\"}", root.GetProperty("body").GetString());
        var headers = root.GetProperty("headers").EnumerateObject().ToDictionary(h => h.Name, h => h.Value.GetString(), StringComparer.OrdinalIgnoreCase);
        Assert.False(headers.ContainsKey("Content-Encoding"));
        Assert.Equal("Bearer [REDACTED:acme-redact]", headers["X-Acme"]);
        Assert.DoesNotContain(token, root.GetProperty("target").GetString()!, StringComparison.Ordinal);
        Assert.DoesNotContain(token, echoed, StringComparison.Ordinal);
        Assert.DoesNotContain(other, echoed, StringComparison.Ordinal);

        var e = await _f.Proxy.WaitForEventAsync(ev => PathOf(ev)?.StartsWith("/echo/redact", StringComparison.Ordinal) == true);
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        var findings = e.GetProperty("findings").EnumerateArray().ToList();
        Assert.Contains(findings, f => f.GetProperty("detector").GetString() == "acme-redact" && f.GetProperty("location").GetString() == "body"
            && f.GetProperty("action").GetString() == "redact");
        Assert.Contains(findings, f => f.GetProperty("location").GetString() == "header");
        Assert.DoesNotContain(token, e.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_log_rule_forwards_and_records_the_finding_without_the_value()
    {
        var token = Synthetic.AcmeLogToken();
        var body = "{\"key\":\"" + token + "\"}";
        using var content = Bytes(Encoding.UTF8.GetBytes(body), "application/json");
        using var response = await _client.PostAsync(_f.HttpsUrl("/echo/logged"), content);
        var echoed = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, echoed);
        using (var doc = JsonDocument.Parse(echoed))
        {
            Assert.Equal(body, doc.RootElement.GetProperty("body").GetString());
        }

        var e = await _f.Proxy.WaitForEventAsync(ev => PathOf(ev) == "/echo/logged");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        var finding = Assert.Single(e.GetProperty("findings").EnumerateArray());
        Assert.Equal("acme-log", finding.GetProperty("detector").GetString());
        Assert.Equal("body", finding.GetProperty("location").GetString());
        Assert.Equal("log", finding.GetProperty("action").GetString());

        // Nowhere in the whole event log, nor in what the proxy printed.
        var all = string.Join('\n', (await _f.Proxy.EventsAsync()).Select(ev => ev.GetRawText()));
        Assert.DoesNotContain(token, all, StringComparison.Ordinal);
        Assert.DoesNotContain(token, _f.Proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_200_MiB_gzip_bomb_is_denied_with_bounded_memory_and_the_origin_receives_nothing()
    {
        const long size = 200L * 1024 * 1024;
        var bomb = Synthetic.GzipZeros(size);
        Assert.True(bomb.Length < ContentFixture.MaxBody, $"the bomb is {bomb.Length} bytes");
        var before = _f.Origin.Received.Count;
        var peakBefore = _f.Proxy.PeakRssBytes();
        using var content = Bytes(bomb, "application/octet-stream", "gzip");
        using var response = await _client.PostAsync(_f.HttpsUrl("/echo/bomb"), content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"got {(int)response.StatusCode}: {text}");
        Assert.Equal("undecodable", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Equal(before, _f.Origin.Received.Count);
        var growth = _f.Proxy.PeakRssBytes() - peakBefore;
        Assert.True(growth < 64L * 1024 * 1024, $"proxy peak RSS grew by {growth / 1024 / 1024} MiB");

        // Stacked: the same bomb inside br is denied as well.
        using var stacked = Bytes(Synthetic.Brotli(bomb), "application/octet-stream", "gzip", "br");
        using var response2 = await _client.PostAsync(_f.HttpsUrl("/echo/bomb2"), stacked);
        Assert.Equal(HttpStatusCode.Forbidden, response2.StatusCode);
        Assert.Equal(before, _f.Origin.Received.Count);
        growth = _f.Proxy.PeakRssBytes() - peakBefore;
        Assert.True(growth < 64L * 1024 * 1024, $"proxy peak RSS grew by {growth / 1024 / 1024} MiB");
    }

    [Fact]
    public async Task A_body_over_max_body_is_refused_with_413_when_over_limit_is_deny()
    {
        var before = _f.Origin.Received.Count;

        // Declared length over the limit.
        using (var content = Bytes(RandomNumberGenerator.GetBytes((int)ContentFixture.MaxBody + 1), "application/octet-stream"))
        using (var response = await _client.PostAsync(_f.HttpsUrl("/upload"), content))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Equal("over-limit", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        }

        // Chunked (no declared length): found out while buffering.
        using (var content = new StreamContent(new DeterministicStream(2 * ContentFixture.MaxBody, seed: 3)))
        using (var response = await _client.PostAsync(_f.HttpsUrl("/upload"), content))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }

        Assert.Equal(before, _f.Origin.Received.Count);

        // Exactly at the limit is scanned and forwarded.
        var atLimit = RandomNumberGenerator.GetBytes((int)ContentFixture.MaxBody);
        using (var content = Bytes(atLimit, "application/octet-stream"))
        using (var response = await _client.PostAsync(_f.HttpsUrl("/upload"), content))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"{atLimit.Length} {Convert.ToHexString(SHA256.HashData(atLimit)).ToLowerInvariant()}", await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task A_body_over_max_body_is_forwarded_intact_and_recorded_when_over_limit_is_allow()
    {
        var policy = _f.PolicyYaml(_f.Pki.WriteCaPem(_f.Dir.Path)).Replace("over_limit: deny", "over_limit: allow", StringComparison.Ordinal);
        Assert.Contains("over_limit: allow", policy, StringComparison.Ordinal);
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, policy);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);

        // With a declared length (never read before forwarding) and chunked (partly read, then streamed on).
        var fixedBody = RandomNumberGenerator.GetBytes(3 * (int)ContentFixture.MaxBody + 17);
        using (var content = Bytes(fixedBody, "application/octet-stream"))
        using (var response = await client.PostAsync(_f.HttpsUrl("/upload?fixed=1"), content))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"{fixedBody.Length} {Convert.ToHexString(SHA256.HashData(fixedBody)).ToLowerInvariant()}", await response.Content.ReadAsStringAsync());
        }

        var stream = new DeterministicStream(5 * ContentFixture.MaxBody / 2, seed: 11);
        using (var content = new StreamContent(stream))
        using (var response = await client.PostAsync(_f.HttpsUrl("/upload?chunked=1"), content))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"{5 * ContentFixture.MaxBody / 2} {stream.Hash()}", await response.Content.ReadAsStringAsync());
        }

        foreach (var path in new[] { "/upload?fixed=", "/upload?chunked=" })
        {
            var e = await proxy.WaitForEventAsync(ev => PathOf(ev) == path);
            Assert.Equal("allow", e.GetProperty("decision").GetString());
            Assert.Equal("over-limit-unscanned", e.GetProperty("reason").GetString());
        }

        // A small body on the same proxy is still scanned.
        using var small = Bytes(Encoding.ASCII.GetBytes("note=" + Synthetic.GitHubToken()), "text/plain");
        using var refused = await client.PostAsync(_f.HttpsUrl("/upload"), small);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task An_exemption_lets_a_detector_match_through_toward_the_exempt_host_only()
    {
        var token = Synthetic.GitHubToken();
        var before = _f.Origin.Received.Count;
        using (var content = Bytes(Encoding.ASCII.GetBytes("note=" + token), "text/plain"))
        using (var response = await _client.PostAsync(_f.HttpsUrl("/echo/exempt", host: "origin.test"), content))
        {
            var echoed = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, echoed);
            using var doc = JsonDocument.Parse(echoed);
            Assert.Equal("note=" + token, doc.RootElement.GetProperty("body").GetString());
        }

        Assert.Equal(before + 1, _f.Origin.Received.Count);

        // The same origin under another name is not exempt; and only github-token is exempt toward origin.test.
        using (var content = Bytes(Encoding.ASCII.GetBytes("note=" + token), "text/plain"))
        using (var response = await _client.PostAsync(_f.HttpsUrl("/echo/not-exempt", host: "localhost"), content))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("github-token", response.Headers.GetValues("X-ProxyGuard-Rule").Single());
        }

        using (var content = Bytes(Encoding.ASCII.GetBytes("note=" + Synthetic.AwsKeyId()), "text/plain"))
        using (var response = await _client.PostAsync(_f.HttpsUrl("/echo/other-detector", host: "origin.test"), content))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("aws-access-key-id", response.Headers.GetValues("X-ProxyGuard-Rule").Single());
        }

        Assert.Equal(before + 1, _f.Origin.Received.Count);
    }

    [Fact]
    public async Task A_plain_http_request_body_is_scanned_like_an_intercepted_one()
    {
        var before = _f.Origin.Received.Count;
        using var content = Bytes(Encoding.ASCII.GetBytes("note=" + Synthetic.GitHubToken()), "text/plain");
        using var response = await _client.PostAsync(_f.HttpUrl("/echo/plain"), content);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("content-finding", response.Headers.GetValues("X-ProxyGuard-Reason").Single());
        Assert.Equal(before, _f.Origin.Received.Count);
    }

    [Fact]
    public async Task A_websocket_upgrade_still_works_with_scanning_on_and_its_headers_are_scanned()
    {
        using (var ws = NewWebSocket())
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await ws.ConnectAsync(new Uri($"wss://localhost:{_f.Origin.HttpsPort}/ws"), cts.Token);
            await ws.SendAsync("ping with scanning on"u8.ToArray(), System.Net.WebSockets.WebSocketMessageType.Text, true, cts.Token);
            var buffer = new byte[100];
            var result = await ws.ReceiveAsync(buffer, cts.Token);
            Assert.Equal("ping with scanning on", Encoding.UTF8.GetString(buffer, 0, result.Count));
            await ws.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "done", cts.Token);
        }

        var before = _f.Origin.Received.Count;
        using (var ws = NewWebSocket())
        {
            ws.Options.SetRequestHeader("X-Api-Key", Synthetic.GitHubToken());
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await Assert.ThrowsAsync<System.Net.WebSockets.WebSocketException>(
                () => ws.ConnectAsync(new Uri($"wss://localhost:{_f.Origin.HttpsPort}/ws"), cts.Token));
        }

        Assert.Equal(before, _f.Origin.Received.Count);
    }

    private System.Net.WebSockets.ClientWebSocket NewWebSocket()
    {
        var ws = new System.Net.WebSockets.ClientWebSocket();
        ws.Options.Proxy = new WebProxy(_f.Proxy.ProxyUrl);
        var ca = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(_f.Proxy.CaPath);
        ws.Options.RemoteCertificateValidationCallback = (_, cert, _, _) =>
        {
            using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
            chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
            return cert is not null && chain.Build(System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(cert.GetRawCertData()));
        };
        return ws;
    }

    private static string? PathOf(JsonElement e) =>
        e.TryGetProperty("path", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;

    /// <summary>A stream whose length is unknown to HttpClient (so HTTP/1.1 sends it chunked, HTTP/2 without Content-Length).</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
