using ProxyGuard.Inspection.Budgets;
using System.Text;
using ProxyGuard.Engine.Forwarding.WebSockets;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Engine.Tests.Support;

namespace ProxyGuard.Engine.Tests.Forwarding;

/// <summary>The relay's inspectors through its wrapped stream: enforce and audit mode, secrets both ways.</summary>
public sealed class WebSocketRelayTests
{
    /// <summary>The client's side of an upgraded connection: reads come from <paramref name="fromClient"/>, writes are kept.</summary>
    private sealed class FakeClient(byte[] fromClient) : Stream
    {
        private readonly MemoryStream _in = new(fromClient);

        public MemoryStream Written { get; } = new();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => _in.Read(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Written.Write(buffer, offset, count);
    }

    private static byte[] ClientText(string text)
    {
        var payload = Encoding.UTF8.GetBytes(text);
        byte[] key = [1, 2, 3, 4];
        var head = payload.Length < 126 ? new byte[] { 0x81, (byte)(0x80 | payload.Length) } : [0x81, 0x80 | 126, (byte)(payload.Length >> 8), (byte)payload.Length];
        return [.. head, .. key, .. payload.Select((b, i) => (byte)(b ^ key[i & 3]))];
    }

    private static byte[] ServerText(string text)
    {
        var payload = Encoding.UTF8.GetBytes(text);
        return [0x81, (byte)payload.Length, .. payload];
    }

    private static (WebSocketRelay Relay, ProxyGuard.Engine.Pipeline.ProxyExchange Exchange) NewRelay(ProxySnapshot snapshot)
    {
        var exchange = TestExchanges.WithView(snapshot, "GET", "https", TestSnapshots.BoundHost, 443, "/ws", upgrade: true);
        return (new WebSocketRelay(exchange, null, new ResourceBudget("test", 1 << 20)), exchange);
    }

    private static async Task<(byte[] Upstream, Exception? Error)> PumpAsync(Stream relayed)
    {
        var upstream = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await relayed.ReadAsync(buffer)) > 0)
            {
                upstream.Write(buffer, 0, n);
            }

            return (upstream.ToArray(), null);
        }
        catch (IOException e)
        {
            return (upstream.ToArray(), e);
        }
    }

    [Fact]
    public async Task Enforce_mode_closes_both_sides_with_1008_and_the_message_never_goes_upstream()
    {
        var (relay, exchange) = NewRelay(TestSnapshots.Enforce);
        var client = new FakeClient([.. ClientText("hello"), .. ClientText("token " + TestSnapshots.AcmeToken)]);
        await using var relayed = relay.Wrap(client);
        var (upstream, error) = await PumpAsync(relayed);

        Assert.NotNull(error);
        Assert.Equal(0x81, upstream[0]); // "hello" went first, re-framed and masked
        Assert.DoesNotContain("acme_", Encoding.Latin1.GetString(upstream), StringComparison.Ordinal);
        Assert.Equal(0x88, upstream[11]); // then a masked close frame, and nothing after it
        Assert.Equal(11 + 2 + 4 + (upstream[12] & 0x7F), upstream.Length);
        var toClient = client.Written.ToArray();
        Assert.Equal(0x88, toClient[0]);
        Assert.Equal(1008, toClient[2] << 8 | toClient[3]);
        Assert.Equal("proxyguard: content-finding", Encoding.UTF8.GetString(toClient, 4, toClient[1] - 2));
        var refusal = relay.Refusal(exchange.Snapshot.Policy.Mode)!;
        Assert.Equal("content-finding", refusal.Reason);
        Assert.Equal("acme-token", refusal.Rule);
        Assert.Contains(exchange.Findings, f => f.Location == "websocket" && f.Detector == "acme-token");
    }

    [Fact]
    public async Task Audit_mode_forwards_the_message_and_records_the_would_be_refusal()
    {
        var (relay, exchange) = NewRelay(TestSnapshots.AuditMode);
        var client = new FakeClient(ClientText("token " + TestSnapshots.AcmeToken));
        await using var relayed = relay.Wrap(client);
        var (upstream, error) = await PumpAsync(relayed);

        Assert.Null(error);
        Assert.Equal(0x81, upstream[0]);
        Assert.Null(relay.Refusal(exchange.Snapshot.Policy.Mode));
        Assert.Equal("audit-deny", exchange.AuditDeny!.VerdictName);
        Assert.Equal("content-finding", exchange.AuditDeny.Reason.Name);
    }

    [Theory]
    [InlineData(TestSnapshots.ApiPlaceholder, "secret-misuse")]
    [InlineData(TestSnapshots.ApiReal, "secret-real-value")]
    public async Task Placeholders_and_real_values_are_refused_in_both_modes(string carried, string reason)
    {
        var (relay, exchange) = NewRelay(TestSnapshots.AuditMode);
        var client = new FakeClient(ClientText("{\"auth\":\"" + carried + "\"}"));
        await using var relayed = relay.Wrap(client);
        var (upstream, error) = await PumpAsync(relayed);

        Assert.NotNull(error);
        Assert.DoesNotContain(carried, Encoding.Latin1.GetString(upstream), StringComparison.Ordinal);
        Assert.Equal(reason, relay.Refusal(exchange.Snapshot.Policy.Mode)!.Reason);
    }

    [Fact]
    public async Task Upstream_messages_are_scrubbed_and_re_framed()
    {
        var (relay, _) = NewRelay(TestSnapshots.Enforce);
        var client = new FakeClient([]);
        await using var relayed = relay.Wrap(client);
        var leak = ServerText("value=" + TestSnapshots.ApiReal);
        await relayed.WriteAsync(leak.AsMemory(0, 5)); // split inside the header and the payload
        await relayed.WriteAsync(leak.AsMemory(5));

        var written = client.Written.ToArray();
        Assert.Equal(0x81, written[0]);
        var text = Encoding.UTF8.GetString(written, 2, written[1]);
        Assert.Equal("value=" + TestSnapshots.ApiPlaceholder, text);
    }
}
