using System.Net.Sockets;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>Requests that Kestrel's parser refuses before the proxy pipeline still become audit events.</summary>
[Collection("proxy")]
public sealed class KestrelRefusalEventTests : IClassFixture<OriginFixture>
{
    private readonly OriginFixture _f;

    public KestrelRefusalEventTests(OriginFixture fixture)
    {
        _f = fixture;
    }

    [Theory]
    [InlineData("conflicting-content-length", "Content-Length: 1\r\nContent-Length: 2\r\n")]
    [InlineData("nul-in-header", "X-Evil: a\0b\r\n")]
    public async Task A_request_kestrel_refuses_is_recorded_as_bad_request(string name, string headers)
    {
        var before = _f.Origin.Received.Count;
        var recordedBefore = CountBadRequests(await _f.Proxy.EventsAsync());
        var proxy = new Uri(_f.Proxy.ProxyUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(proxy.Host, proxy.Port);
        var stream = tcp.GetStream();
        var marker = "/kestrel-refusal/" + name;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST http://localhost:{_f.Origin.HttpPort}{marker} HTTP/1.1\r\nHost: localhost:{_f.Origin.HttpPort}\r\n{headers}\r\nab"));
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await stream.ReadAsync(buffer, cts.Token);
        Assert.StartsWith("HTTP/1.1 400", Encoding.ASCII.GetString(buffer, 0, n), StringComparison.Ordinal);

        var events = await WaitForBadRequestsAsync(recordedBefore);
        Assert.Equal(recordedBefore + 1, CountBadRequests(events));
        var recorded = events.Last(e => e.GetProperty("reason").ValueKind == System.Text.Json.JsonValueKind.String && e.GetProperty("reason").GetString() == "bad-request");
        Assert.Equal("deny", recorded.GetProperty("decision").GetString());
        Assert.Equal(400, recorded.GetProperty("status").GetInt32());
        Assert.Equal("127.0.0.1", recorded.GetProperty("clientAddress").GetString());
        Assert.Equal(before, _f.Origin.Received.Count);
    }

    private static int CountBadRequests(List<System.Text.Json.JsonElement> events) =>
        events.Count(e => e.GetProperty("reason").ValueKind == System.Text.Json.JsonValueKind.String && e.GetProperty("reason").GetString() == "bad-request");

    private async Task<List<System.Text.Json.JsonElement>> WaitForBadRequestsAsync(int before)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var events = await _f.Proxy.EventsAsync();
            if (CountBadRequests(events) > before || sw.Elapsed > TimeSpan.FromSeconds(10))
            {
                return events;
            }

            await Task.Delay(100);
        }
    }
}
