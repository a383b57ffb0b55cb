using ProxyGuard.Inspection.Budgets;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using ProxyGuard.Engine.Forwarding.WebSockets;
using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Tests.Forwarding;

/// <summary>The RFC 6455 frame filter alone: framing rules, reassembly, re-framing, bounds and linear cost.</summary>
public sealed class WebSocketFrameFilterTests
{
    private static readonly byte[] Key = [0x37, 0xFA, 0x21, 0x3D];

    /// <summary>One frame as a peer would send it (masked when <paramref name="mask"/>), with the raw length encoding chosen.</summary>
    private static byte[] Frame(int opcode, byte[] payload, bool fin = true, bool mask = true, int rsv = 0, int? forceLengthBytes = null)
    {
        var head = new List<byte> { (byte)((fin ? 0x80 : 0) | rsv << 4 | opcode) };
        var maskBit = mask ? 0x80 : 0;
        var lengthBytes = forceLengthBytes ?? (payload.Length < 126 ? 0 : payload.Length <= ushort.MaxValue ? 2 : 8);
        if (lengthBytes == 0)
        {
            head.Add((byte)(maskBit | payload.Length));
        }
        else if (lengthBytes == 2)
        {
            head.Add((byte)(maskBit | 126));
            head.Add((byte)(payload.Length >> 8));
            head.Add((byte)payload.Length);
        }
        else
        {
            head.Add((byte)(maskBit | 127));
            var wide = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(wide, (ulong)payload.Length);
            head.AddRange(wide);
        }

        var body = (byte[])payload.Clone();
        if (mask)
        {
            head.AddRange(Key);
            for (var i = 0; i < body.Length; i++)
            {
                body[i] ^= Key[i & 3];
            }
        }

        return [.. head, .. body];
    }

    private static (WebSocketFrameFilter Filter, List<(int Opcode, string Payload)> Seen) NewFilter(
        bool fromClient = true, long max = 1024, ResourceBudget? budget = null, Func<int, ReadOnlyMemory<byte>, WebSocketVerdict>? inspect = null)
    {
        var seen = new List<(int, string)>();
        var filter = new WebSocketFrameFilter(fromClient, max, budget ?? new ResourceBudget("test", 1 << 20), (opcode, payload) =>
        {
            seen.Add((opcode, Encoding.UTF8.GetString(payload.Span)));
            return inspect?.Invoke(opcode, payload) ?? WebSocketVerdict.Forward;
        });
        return (filter, seen);
    }

    /// <summary>Decodes the filter's output frames (unmasking them) and releases them.</summary>
    private static List<(int Opcode, bool Masked, string Payload)> Drain(WebSocketFrameFilter filter)
    {
        var frames = new List<(int, bool, string)>();
        while (filter.Output.TryDequeue(out var frame))
        {
            var head = frame.Header;
            Assert.Equal(0x80, head[0] & 0xF0); // FIN, no reserved bits
            var masked = (head[1] & 0x80) != 0;
            var payload = frame.Payload is null ? [] : frame.Payload.AsSpan(0, frame.PayloadLength).ToArray();
            if (masked)
            {
                var key = head.AsSpan(frame.HeaderLength - 4, 4);
                for (var i = 0; i < payload.Length; i++)
                {
                    payload[i] ^= key[i & 3];
                }
            }

            frames.Add((head[0] & 0x0F, masked, Encoding.UTF8.GetString(payload)));
            filter.Release(frame);
        }

        return frames;
    }

    [Fact]
    public void Fragments_with_an_interleaved_ping_are_reassembled_into_one_masked_frame_after_the_ping()
    {
        var (filter, seen) = NewFilter();
        var input = Frame(1, "hel"u8.ToArray(), fin: false)
            .Concat(Frame(9, "p"u8.ToArray()))
            .Concat(Frame(0, "lo "u8.ToArray(), fin: false))
            .Concat(Frame(0, "world"u8.ToArray()))
            .ToArray();

        // Byte by byte: headers and payloads split at every position give the same result.
        foreach (var b in input)
        {
            Assert.True(filter.Feed([b]));
        }

        Assert.Equal(new[] { (9, "p"), (1, "hello world") }, seen);
        var output = Drain(filter);
        Assert.Equal(new[] { (9, true, "p"), (1, true, "hello world") }, output);
    }

    [Fact]
    public void Toward_the_client_frames_are_not_masked_and_a_replacement_is_re_framed_with_its_own_length()
    {
        var longer = new string('z', 300);
        var (filter, _) = NewFilter(fromClient: false, inspect: (_, _) => new WebSocketVerdict(null, Encoding.UTF8.GetBytes(longer)));
        Assert.True(filter.Feed(Frame(1, "short"u8.ToArray(), mask: false)));
        var output = Drain(filter);
        Assert.Equal(new[] { (1, false, longer) }, output);
    }

    [Theory]
    [InlineData("unmasked client frame")]
    [InlineData("masked upstream frame")]
    [InlineData("reserved bit")]
    [InlineData("reserved opcode")]
    [InlineData("fragmented control")]
    [InlineData("long control")]
    [InlineData("non-minimal 16-bit length")]
    [InlineData("non-minimal 64-bit length")]
    [InlineData("continuation first")]
    [InlineData("new message inside a message")]
    [InlineData("one-byte close")]
    [InlineData("invalid utf-8 text")]
    public void Frames_that_break_rfc_6455_stop_the_direction(string kind)
    {
        var fromClient = kind != "masked upstream frame";
        var (filter, seen) = NewFilter(fromClient);
        var bytes = kind switch
        {
            "unmasked client frame" => Frame(1, "x"u8.ToArray(), mask: false),
            "masked upstream frame" => Frame(1, "x"u8.ToArray(), mask: true),
            "reserved bit" => Frame(1, "x"u8.ToArray(), rsv: 4),
            "reserved opcode" => Frame(3, "x"u8.ToArray()),
            "fragmented control" => Frame(9, "x"u8.ToArray(), fin: false),
            "long control" => Frame(9, new byte[126]),
            "non-minimal 16-bit length" => Frame(1, "x"u8.ToArray(), forceLengthBytes: 2),
            "non-minimal 64-bit length" => Frame(1, new byte[200], forceLengthBytes: 8),
            "continuation first" => Frame(0, "x"u8.ToArray()),
            "new message inside a message" => [.. Frame(1, "a"u8.ToArray(), fin: false), .. Frame(2, "b"u8.ToArray())],
            "one-byte close" => Frame(8, [3]),
            _ => Frame(1, [0xC3, 0x28]),
        };
        Assert.False(filter.Feed(bytes));
        Assert.NotNull(filter.Stop);
        Assert.Equal(kind == "invalid utf-8 text" ? 1007 : 1002, filter.Stop!.CloseCode);
        Assert.Equal("websocket-protocol", filter.Stop.Reason.Name);
        Assert.Empty(seen);
        Assert.Empty(filter.Output);
    }

    [Fact]
    public void A_message_over_the_cap_stops_with_1009_before_its_payload_is_buffered()
    {
        var budget = new ResourceBudget("test", 1 << 20);
        var (filter, seen) = NewFilter(max: 100, budget: budget);
        Assert.True(filter.Feed(Frame(1, new byte[60], fin: false)));

        // Only the header of the second fragment: the declared length already passes the cap.
        var second = Frame(0, new byte[60]);
        Assert.False(filter.Feed(second.AsSpan(0, 8)));
        Assert.Equal(1009, filter.Stop!.CloseCode);
        Assert.Equal("over-limit", filter.Stop.Reason.Name);
        Assert.Empty(seen);
        filter.Dispose();
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public void The_process_budget_stops_a_message_with_1013_and_every_byte_is_returned()
    {
        var budget = new ResourceBudget("test", 2000);
        var (first, _) = NewFilter(max: 4096, budget: budget);
        var (second, _) = NewFilter(max: 4096, budget: budget);
        Assert.True(first.Feed(Frame(2, new byte[900], fin: false)));
        Assert.Equal(900, budget.InUse);
        Assert.False(second.Feed(Frame(2, new byte[1200])));
        Assert.Equal(1013, second.Stop!.CloseCode);
        Assert.Equal("websocket-buffer-full", second.Stop.Reason.Name);

        Assert.True(first.Feed(Frame(0, new byte[10])));
        Assert.Single(first.Output);
        Drain(first);
        Assert.Equal(0, budget.InUse);
        first.Dispose();
        second.Dispose();
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public void A_refusal_stops_the_direction_and_nothing_of_the_message_is_output()
    {
        var stop = new WebSocketStop(1008, Policy.Decisions.Reasons.ContentFinding, "finding", "aws-access-key-id");
        var (filter, _) = NewFilter(inspect: (opcode, payload) => payload.Span.IndexOf("AKIA"u8) >= 0 ? new WebSocketVerdict(stop, null) : WebSocketVerdict.Forward);
        Assert.True(filter.Feed(Frame(1, "fine"u8.ToArray())));
        Assert.False(filter.Feed(Frame(1, "AK"u8.ToArray(), fin: false).Concat(Frame(0, "IA0000"u8.ToArray())).ToArray()));
        Assert.Same(stop, filter.Stop);
        Assert.Equal(new[] { (1, true, "fine") }, Drain(filter));
        filter.EmitClose(1008, "proxyguard: content-finding");
        var close = Drain(filter).Single();
        Assert.Equal(8, close.Opcode);
        Assert.EndsWith("proxyguard: content-finding", close.Payload, StringComparison.Ordinal);
    }

    [Fact]
    public void After_a_close_frame_later_frames_are_dropped()
    {
        var (filter, seen) = NewFilter();
        Assert.True(filter.Feed([.. Frame(8, [0x03, 0xE8]), .. Frame(1, "late"u8.ToArray())]));
        Assert.True(filter.Closed);
        Assert.Equal(new[] { 8 }, seen.Select(s => s.Opcode));
        Assert.Single(Drain(filter));
    }

    [Fact]
    public void Parsing_cost_is_linear_in_the_input()
    {
        // Many tiny fragments (the worst case for per-frame work) at 4x the size cost about 4x, not 16x.
        static double Measure(int fragments)
        {
            var (filter, _) = NewFilter(max: long.MaxValue, budget: new ResourceBudget("test", long.MaxValue));
            var one = Frame(0, "a"u8.ToArray(), fin: false);
            var input = new byte[one.Length * fragments + 16];
            var first = Frame(1, "a"u8.ToArray(), fin: false);
            first.CopyTo(input, 0);
            for (var i = 1; i < fragments; i++)
            {
                one.CopyTo(input, i * one.Length);
            }

            var used = one.Length * fragments;
            var fed = false;
            var elapsed = ProxyGuard.Secrets.Tests.Support.ThreadCpuTime.Of(() => fed = filter.Feed(input.AsSpan(0, used))).TotalMilliseconds; // thread CPU: load elsewhere does not count
            Assert.True(fed);
            filter.Dispose();
            return elapsed;
        }

        Measure(20_000); // warm-up
        var small = Enumerable.Range(0, 3).Min(_ => Measure(50_000));
        var large = Enumerable.Range(0, 3).Min(_ => Measure(200_000));
        Assert.True(large < Math.Max(small, 1) * 8, $"50k fragments {small:F1} ms, 200k fragments {large:F1} ms");
    }
}
