using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Budgets;

/// <summary>
/// R5-5: upload-byte budgets count a streamed body (chunked, or HTTP/2 without a length) and a WebSocket's frames from
/// the client while they flow, and cut the transfer off at the limit: the upstream receives at most the limit (the
/// read that would pass it is not forwarded, so up to one read, at most 64 KiB, of room may stay unused); the request
/// is recorded with <c>budget-exceeded</c> and counted in <c>proxyguard_budget_cutoffs_total</c>. Before the fix a
/// chunked upload that started with room left went out whole (5 MB against <c>1000/1h</c>) and WebSocket frames were
/// not counted at all.
/// </summary>
[Collection("proxy")]
public sealed class StreamedBudgetTests : IClassFixture<PolicyOrigin>
{
    private const int ReadTolerance = 64 * 1024;

    private readonly PolicyOrigin _o;
    private readonly ITestOutputHelper _output;

    public StreamedBudgetTests(PolicyOrigin origin, ITestOutputHelper output)
    {
        _o = origin;
        _output = output;
    }

    private static string Policy(long bytes) => $"""
        rules:
          - name: origin
            hosts: [localhost]
            ports: [{"{HTTPS}"}, {"{HTTP}"}]
            action: allow
            websocket: true
        budgets:
          - name: uploads
            upload_bytes: {bytes}/1h
        """;

    [Fact]
    public async Task A_chunked_5_MB_upload_against_a_1000_byte_budget_is_cut_off_and_the_origin_gets_at_most_the_limit()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Policy(1000));
        var response = await ChunkedUploadAsync(proxy, _o.HttpUrl("/count/r55-chunked"), 5 * 1024 * 1024);

        Assert.True(response.StartsWith("HTTP/1.1 429", StringComparison.Ordinal), response);
        Assert.Contains("X-ProxyGuard-Reason: budget-exceeded", response, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("X-ProxyGuard-Rule: uploads", response, StringComparison.OrdinalIgnoreCase);
        Assert.True(_o.OriginSaw("r55-chunked"));
        Assert.True(_o.Origin.Uploaded.GetValueOrDefault("r55-chunked") <= 1000, $"the origin received {_o.Origin.Uploaded.GetValueOrDefault("r55-chunked")} bytes");
        Assert.False(_o.Origin.UploadsComplete.ContainsKey("r55-chunked"), "the upload reached the origin complete");

        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString()!.Contains("r55-chunked", StringComparison.Ordinal), 10000);
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal("budget-exceeded", e.GetProperty("reason").GetString());
        Assert.Equal("uploads", e.GetProperty("rule").GetString());
        _output.WriteLine($"1000-byte budget, 5 MiB chunked: proxy forwarded {e.GetProperty("requestBytes").GetInt64()} bytes, origin received {_o.Origin.Uploaded.GetValueOrDefault("r55-chunked")}");
        Assert.Equal(1, await CutoffsAsync(proxy, "uploads", "upload"));

        // The next streamed upload gets at most what is left (it is refused outright when nothing is).
        var next = await ChunkedUploadAsync(proxy, _o.HttpUrl("/count/r55-chunked-next"), 3000);
        Assert.True(next.StartsWith("HTTP/1.1 429", StringComparison.Ordinal), next);
        Assert.False(_o.Origin.UploadsComplete.ContainsKey("r55-chunked-next"), "the second upload reached the origin complete");
        var total = _o.Origin.Uploaded.GetValueOrDefault("r55-chunked") + _o.Origin.Uploaded.GetValueOrDefault("r55-chunked-next");
        Assert.True(total <= 1000, $"the origin received {total} bytes from both uploads");
    }

    [Fact]
    public async Task An_http2_upload_without_a_length_is_cut_off_near_the_limit_and_one_within_it_goes_whole()
    {
        const int limit = 300_000;
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Policy(limit));
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath, HttpVersion.Version20);

        // Within the budget: streamed (no Content-Length), arrives whole.
        using (var small = await client.PostAsync(_o.HttpsUrl("/count/r55-h2-small"), new StreamContent(new Unsized(50_000))))
        {
            Assert.Equal(HttpStatusCode.OK, small.StatusCode);
            Assert.Equal(HttpVersion.Version20, small.Version);
        }

        Assert.Equal(50_000, _o.Origin.Uploaded["r55-h2-small"]);

        // 5 MB with 250,000 left: cut off at the limit.
        try
        {
            using var big = await client.PostAsync(_o.HttpsUrl("/count/r55-h2-big"), new StreamContent(new Unsized(5 * 1024 * 1024)));
            Assert.Equal(HttpStatusCode.TooManyRequests, big.StatusCode);
        }
        catch (HttpRequestException)
        {
            // The proxy may reset the stream while the client is still sending: the response is then lost.
        }

        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString()!.Contains("r55-h2-big", StringComparison.Ordinal), 10000);
        Assert.Equal("budget-exceeded", e.GetProperty("reason").GetString());
        // The proxy passed on what fitted: up to the limit, short of it by less than one read. The origin gets at most
        // that (bytes still in flight when the upstream request is aborted are lost on the way).
        var forwarded = e.GetProperty("requestBytes").GetInt64();
        Assert.InRange(forwarded, limit - 50_000 - ReadTolerance + 1, limit - 50_000);
        var received = _o.Origin.Uploaded.GetValueOrDefault("r55-h2-big");
        _output.WriteLine($"HTTP/2, 250000 bytes left, 5 MiB without a length: proxy forwarded {forwarded}, origin received {received}");
        Assert.InRange(received, 0, forwarded);
        Assert.False(_o.Origin.UploadsComplete.ContainsKey("r55-h2-big"), "the upload reached the origin complete");
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task A_websocket_sending_past_its_upload_budget_is_closed_with_1008_and_recorded(string version)
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Policy(1000));
        using var invoker = new HttpMessageInvoker(ProxyClients.Handler(proxy.ProxyUrl, proxy.CaPath));
        var marker = "r55-ws-" + version;
        using var ws = await ConnectAsync(invoker, version, marker);

        // 300-byte messages are 308 bytes on the wire from the client (header, length, mask): three fit in 1000.
        var message = new string('m', 300);
        for (var i = 0; i < 3; i++)
        {
            await SendAsync(ws, message);
            var (result, echoed) = await ReceiveAsync(ws);
            Assert.Equal(WebSocketMessageType.Text, result.MessageType);
            Assert.Equal(message, echoed);
        }

        await SendAsync(ws, message);
        var (closed, _) = await ReceiveAsync(ws);
        Assert.Equal(WebSocketMessageType.Close, closed.MessageType);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, closed.CloseStatus);
        Assert.Contains("budget-exceeded", closed.CloseStatusDescription, StringComparison.Ordinal);

        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString()!.Contains(marker, StringComparison.Ordinal), 10000);
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal("budget-exceeded", e.GetProperty("reason").GetString());
        Assert.Equal("uploads", e.GetProperty("rule").GetString());
        Assert.Equal(1, await CutoffsAsync(proxy, "uploads", "websocket"));
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task An_idle_websocket_is_closed_with_1001_after_the_idle_timeout_recorded_and_its_slot_released(string version)
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Policy(1_000_000), new Dictionary<string, string>
        {
            ["PROXYGUARD_LIMIT_WEBSOCKET_IDLE_TIMEOUT"] = "3",
            // HTTP/1.1: each WebSocket is a tunnel of its own (one slot); HTTP/2: the connection and each WebSocket.
            ["PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT"] = version == "1.1" ? "1" : "2",
        });
        using var invoker = new HttpMessageInvoker(ProxyClients.Handler(proxy.ProxyUrl, proxy.CaPath));
        var marker = "r55-idle-" + version;
        using var ws = await ConnectAsync(invoker, version, marker);
        await SendAsync(ws, "hello");
        Assert.Equal("hello", (await ReceiveAsync(ws)).Text);

        // While it is open, its slot is taken: a second WebSocket is refused.
        using (var refused = NewSocket(version))
        {
            await Assert.ThrowsAnyAsync<WebSocketException>(() => refused.ConnectAsync(Target(marker + "-second"), invoker, CancellationToken.None));
        }

        var quiet = Stopwatch.StartNew();
        var (closed, _) = await ReceiveAsync(ws, TimeSpan.FromSeconds(20));
        quiet.Stop();
        Assert.Equal(WebSocketMessageType.Close, closed.MessageType);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, closed.CloseStatus); // 1001 going away
        Assert.Contains("websocket-idle", closed.CloseStatusDescription, StringComparison.Ordinal);
        Assert.InRange(quiet.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));

        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString()!.EndsWith(marker, StringComparison.Ordinal), 10000);
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal("websocket-idle", e.GetProperty("reason").GetString());

        // The slot is free again: a new WebSocket opens (the release may take a moment after the close).
        using var again = await ConnectWithRetryAsync(invoker, version, marker + "-again");
        await SendAsync(again, "back");
        Assert.Equal("back", (await ReceiveAsync(again)).Text);
        Assert.DoesNotContain("Unhandled", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_busy_websocket_is_closed_with_1001_at_the_lifetime_cap()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Policy(1_000_000), new Dictionary<string, string>
        {
            ["PROXYGUARD_LIMIT_WEBSOCKET_MAX_LIFETIME"] = "3",
        });
        using var invoker = new HttpMessageInvoker(ProxyClients.Handler(proxy.ProxyUrl, proxy.CaPath));
        using var ws = await ConnectAsync(invoker, "1.1", "r55-lifetime");
        var open = Stopwatch.StartNew();
        WebSocketReceiveResult last;
        while (true)
        {
            await SendAsync(ws, "still busy");
            (last, _) = await ReceiveAsync(ws);
            if (last.MessageType == WebSocketMessageType.Close || open.Elapsed > TimeSpan.FromSeconds(20))
            {
                break;
            }

            await Task.Delay(200);
        }

        Assert.Equal(WebSocketMessageType.Close, last.MessageType);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, last.CloseStatus);
        Assert.Contains("websocket-lifetime", last.CloseStatusDescription, StringComparison.Ordinal);
        Assert.InRange(open.Elapsed, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(10));
        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString()!.EndsWith("r55-lifetime", StringComparison.Ordinal), 10000);
        Assert.Equal("websocket-lifetime", e.GetProperty("reason").GetString());
    }

    /// <summary>
    /// Across replicas (PostgreSQL budget store): streamed uploads through two replicas are counted through the leases
    /// as they flow, and together they never put more than the limit through to the origin.
    /// </summary>
    [RequiresPostgresFact]
    public async Task Across_two_replicas_streamed_uploads_together_never_pass_the_limit()
    {
        const int limit = 200_000;
        await using var postgres = await PostgresServer.StartAsync();
        using var dir = new TempDir();
        var environment = new Dictionary<string, string> { ["PROXYGUARD_BUDGET_SYNC_MS"] = "100" };
        await using var first = await ProxyProcess.StartAsync(dir.File("replica-0"), _o.Policy(Policy(limit)), ["--budget-store", postgres.Url], environment);
        await using var second = await ProxyProcess.StartAsync(dir.File("replica-1"), _o.Policy(Policy(limit)), ["--budget-store", postgres.Url], environment);

        var one = await ChunkedUploadAsync(first, _o.HttpUrl("/count/r55-fleet-0"), 5 * 1024 * 1024);
        Assert.True(one.StartsWith("HTTP/1.1 429", StringComparison.Ordinal), one);
        var two = await ChunkedUploadAsync(second, _o.HttpUrl("/count/r55-fleet-1"), 5 * 1024 * 1024);
        Assert.True(two.StartsWith("HTTP/1.1 429", StringComparison.Ordinal), two);

        var e = await first.WaitForEventAsync(ev => ev.GetProperty("path").GetString()!.Contains("r55-fleet-0", StringComparison.Ordinal), 10000);
        Assert.Equal("budget-exceeded", e.GetProperty("reason").GetString());
        var forwarded = e.GetProperty("requestBytes").GetInt64();
        Assert.True(forwarded > limit / 2, $"the first upload was cut off after {forwarded} bytes, far from the limit");
        var total = _o.Origin.Uploaded.GetValueOrDefault("r55-fleet-0") + _o.Origin.Uploaded.GetValueOrDefault("r55-fleet-1");
        _output.WriteLine($"two replicas, 200000-byte budget: first upload forwarded {forwarded}; origin received {_o.Origin.Uploaded.GetValueOrDefault("r55-fleet-0")} + {_o.Origin.Uploaded.GetValueOrDefault("r55-fleet-1")}");
        Assert.True(total <= limit, $"the origin received {total} bytes through two replicas");
        Assert.False(_o.Origin.UploadsComplete.ContainsKey("r55-fleet-0") || _o.Origin.UploadsComplete.ContainsKey("r55-fleet-1"));
    }

    private Uri Target(string marker) => new($"wss://localhost:{_o.Origin.HttpsPort}/ws/{marker}");

    private static ClientWebSocket NewSocket(string version)
    {
        var ws = new ClientWebSocket();
        ws.Options.HttpVersion = version == "2.0" ? HttpVersion.Version20 : HttpVersion.Version11;
        ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        ws.Options.KeepAliveInterval = TimeSpan.Zero; // no pings of its own: idle means idle
        return ws;
    }

    private async Task<ClientWebSocket> ConnectAsync(HttpMessageInvoker invoker, string version, string marker)
    {
        var ws = NewSocket(version);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(Target(marker), invoker, timeout.Token);
        return ws;
    }

    private async Task<ClientWebSocket> ConnectWithRetryAsync(HttpMessageInvoker invoker, string version, string marker)
    {
        var until = Stopwatch.StartNew();
        while (true)
        {
            var ws = NewSocket(version);
            try
            {
                await ws.ConnectAsync(Target(marker), invoker, CancellationToken.None);
                return ws;
            }
            catch (WebSocketException) when (until.Elapsed < TimeSpan.FromSeconds(5))
            {
                ws.Dispose();
                await Task.Delay(250);
            }
        }
    }

    private static async Task SendAsync(WebSocket ws, string text)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, timeout.Token);
    }

    private static async Task<(WebSocketReceiveResult Result, string Text)> ReceiveAsync(WebSocket ws, TimeSpan? wait = null)
    {
        using var timeout = new CancellationTokenSource(wait ?? TimeSpan.FromSeconds(20));
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer, timeout.Token);
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage || result.MessageType == WebSocketMessageType.Close)
            {
                return (result, Encoding.UTF8.GetString(message.ToArray()));
            }
        }
    }

    /// <summary>The value of <c>proxyguard_budget_cutoffs_total{budget,kind}</c> (0 when absent).</summary>
    private static async Task<long> CutoffsAsync(ProxyProcess proxy, string budget, string kind)
    {
        using var admin = proxy.AdminClient();
        var text = await admin.GetStringAsync(proxy.AdminUrl + "/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("proxyguard_budget_cutoffs_total{", StringComparison.Ordinal)
                && line.Contains($"budget=\"{budget}\"", StringComparison.Ordinal) && line.Contains($"kind=\"{kind}\"", StringComparison.Ordinal))
            {
                return (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    /// <summary>
    /// Sends <paramref name="size"/> bytes as a chunked upload (1000-byte chunks) through the proxy over plain HTTP while
    /// reading the response; returns the response (the upload may be cut off while it is still being written).
    /// </summary>
    private static async Task<string> ChunkedUploadAsync(ProxyProcess proxy, string url, int size)
    {
        var uri = new Uri(proxy.ProxyUrl);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Parse(uri.Host), uri.Port);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var target = new Uri(url);
        var head = $"POST {url} HTTP/1.1\r\nHost: {target.Authority}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var writer = Task.Run(async () =>
        {
            try
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), cts.Token);
                var chunk = Encoding.ASCII.GetBytes("3e8\r\n" + new string('u', 1000) + "\r\n");
                for (var sent = 0; sent < size; sent += 1000)
                {
                    await stream.WriteAsync(chunk, cts.Token);
                }

                await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), cts.Token);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                // cut off by the proxy
            }
        });
        var response = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0)
            {
                response.Write(buffer, 0, n);
            }
        }
        catch (IOException)
        {
            // reset after the response
        }

        await cts.CancelAsync();
        await writer;
        return Encoding.ASCII.GetString(response.ToArray());
    }

    /// <summary>A read-only stream of <c>size</c> bytes whose length is not known (so HTTP/2 sends no content-length).</summary>
    private sealed class Unsized(long size) : Stream
    {
        private long _left = size;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(Math.Min(count, 16 * 1024), _left);
            buffer.AsSpan(offset, n).Fill((byte)'h');
            _left -= n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
