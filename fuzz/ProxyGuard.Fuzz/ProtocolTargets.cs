using System.Buffers.Binary;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using ProxyGuard.Engine.Forwarding.WebSockets;
using ProxyGuard.Engine.Framing;
using ProxyGuard.Inspection.Budgets;

namespace ProxyGuard.Fuzz;

/// <summary>
/// Fuzz targets for the parsers that follow hostile connection bytes: the framing guard's HTTP/1.x and HTTP/2
/// trackers, the HPACK decoder under the HTTP/2 tracker, and the WebSocket frame filter. Each target's first byte
/// picks the configuration (limits, how the input is cut into reads); the rest is the connection's bytes.
/// Invariants common to all four: no exception but the documented refusal, the same result however the bytes are
/// cut into reads, allocation bounded by a constant per input byte plus the configured limits (bounded state), and
/// time linear in the input (a generous per-byte bound, re-measured before it counts).
/// </summary>
public static class ProtocolTargets
{
    private const int MaxFrame = 16 * 1024;

    /// <summary>How the input is cut into reads for the second feed (the first feed is one read).</summary>
    private static readonly int[] s_cuts = [1, 2, 3, 5, 8, 13, 64, 1024];

    /// <summary>HTTP/1.x framing tracker: recorded heads and the stop offset do not depend on how reads are cut.</summary>
    public static void Http1Target(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        var mode = data[0];
        var cut = s_cuts[mode & 7];
        int[] heads = [64, 512, 8192, 41 * 1024];
        var maxHead = heads[(mode >> 3) & 3];
        var input = data.AsSpan(1).ToArray();

        var whole = new FramingFeature();
        Bounded(input.Length, 4 * maxHead, () =>
        {
            whole = new FramingFeature();
            new Http1FramingTracker(whole, maxHead).Feed(input);
        });
        var split = new FramingFeature();
        var tracker = new Http1FramingTracker(split, maxHead);
        Feed(input, cut, tracker.Feed);

        var a = Http1Records(whole, input.Length);
        var b = Http1Records(split, input.Length);
        Check(a.SequenceEqual(b), $"HTTP/1 heads differ when the input is read {cut} bytes at a time");
    }

    /// <summary>What the strict-HTTP stage would get at every offset Kestrel could have consumed to.</summary>
    private static List<FramingProblem> Http1Records(FramingFeature feature, int length)
    {
        var records = new List<FramingProblem>(length + 1);
        for (var offset = 0; offset <= length; offset++)
        {
            feature.Consumed(offset);
            records.Add(feature.CurrentHttp1());
        }

        return records;
    }

    /// <summary>
    /// HTTP/2 framing tracker (frames and HPACK): the verdict for every stream the input names does not depend on how
    /// reads are cut; buffers stay within the frame and header-block limits.
    /// </summary>
    public static void Http2Target(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        var mode = data[0];
        var cut = s_cuts[(mode >> 1) & 7];
        int[] blocks = [64, 1024, 16 * 1024, 48 * 1024];
        var maxBlock = blocks[(mode >> 4) & 3];
        var tableSize = (mode & 0x40) != 0 ? 0 : 4096;
        var preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;
        // Bit 0: the harness writes the connection preface, so mutations spend their bytes on frames.
        byte[] input = (mode & 1) != 0 ? [.. preface, .. data.AsSpan(1)] : data.AsSpan(1).ToArray();

        var whole = new FramingFeature();
        Bounded(input.Length, 4 * (MaxFrame + maxBlock + tableSize), () =>
        {
            whole = new FramingFeature();
            new Http2FramingTracker(whole, tableSize, MaxFrame, maxBlock).Feed(input);
        });
        var split = new FramingFeature();
        var tracker = new Http2FramingTracker(split, tableSize, MaxFrame, maxBlock);
        Feed(input, cut, tracker.Feed);

        var ids = StreamIds(input, preface.Length);
        foreach (var id in ids)
        {
            var x = whole.Stream(id);
            var y = split.Stream(id);
            Check(x == y, $"stream {id}: {x} read whole, {y} read {cut} bytes at a time");
        }
    }

    /// <summary>The stream ids of the frame headers in the input (and one past the largest), walked independently.</summary>
    private static SortedSet<int> StreamIds(byte[] input, int prefaceLength)
    {
        var ids = new SortedSet<int> { 1 };
        var i = prefaceLength;
        while (i + 9 <= input.Length && ids.Count < 4096)
        {
            var length = (input[i] << 16) | (input[i + 1] << 8) | input[i + 2];
            var id = (int)(BinaryPrimitives.ReadUInt32BigEndian(input.AsSpan(i + 5)) & 0x7FFFFFFF);
            ids.Add(id);
            if (id < int.MaxValue)
            {
                ids.Add(id + 1);
            }

            i += 9 + length;
        }

        return ids;
    }

    private static readonly FieldInfo s_hpackTable = typeof(HpackDecoder).GetField("_table", BindingFlags.NonPublic | BindingFlags.Instance)!;
    private static readonly FieldInfo s_hpackTableSize = typeof(HpackDecoder).GetField("_tableSize", BindingFlags.NonPublic | BindingFlags.Instance)!;
    private static readonly FieldInfo s_hpackCurrentMax = typeof(HpackDecoder).GetField("_currentMax", BindingFlags.NonPublic | BindingFlags.Instance)!;

    /// <summary>
    /// HPACK decoder: the input is a series of header blocks (each after a one-byte length) decoded in order by one
    /// decoder, as on one connection. Only <see cref="InvalidDataException"/> may escape (the connection then ends);
    /// the dynamic table's size accounting is exact and within the advertised and the current limit; every field
    /// is Latin-1 and survives a round trip through a plain literal encoding.
    /// </summary>
    public static void HpackTarget(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        int[] sizes = [0, 64, 256, 4096];
        var maxTable = sizes[data[0] & 3];
        var blocks = new List<byte[]>();
        for (var i = 1; i < data.Length;)
        {
            var length = Math.Min(data[i], data.Length - i - 1);
            blocks.Add(data.AsSpan(i + 1, length).ToArray());
            i += 1 + length;
        }

        // Time and allocation of the whole connection's blocks; the field count keeps the work observable.
        Bounded(data.Length, 4 * maxTable, () =>
        {
            var fieldsSeen = 0;
            var timed = new HpackDecoder(maxTable);
            try
            {
                foreach (var block in blocks)
                {
                    timed.Decode(block, (_, _) => fieldsSeen++);
                }
            }
            catch (InvalidDataException)
            {
                // the connection ends here
            }

            Check(fieldsSeen <= data.Length, "more fields than input bytes");
        });

        var decoder = new HpackDecoder(maxTable);
        foreach (var block in blocks)
        {
            var fields = new List<(string Name, string Value)>();
            try
            {
                decoder.Decode(block, (n, v) => fields.Add((n, v)));
            }
            catch (InvalidDataException)
            {
                return; // the connection ends here
            }

            CheckTable(decoder, maxTable);
            foreach (var (name, value) in fields)
            {
                Check(!name.Any(c => c > 0xFF) && !value.Any(c => c > 0xFF), "a decoded field with a character above 0xFF");
            }

            var again = new List<(string Name, string Value)>();
            new HpackDecoder(0).Decode(EncodeLiterals(fields), (n, v) => again.Add((n, v)));
            Check(fields.SequenceEqual(again), "fields do not survive a plain literal round trip");
        }
    }

    private static void CheckTable(HpackDecoder decoder, int maxTable)
    {
        var table = (List<(string Name, string Value)>)s_hpackTable.GetValue(decoder)!;
        var size = (int)s_hpackTableSize.GetValue(decoder)!;
        var currentMax = (int)s_hpackCurrentMax.GetValue(decoder)!;
        var sum = table.Sum(e => e.Name.Length + e.Value.Length + 32);
        Check(sum == size, $"dynamic table size {size}, entries add up to {sum}");
        Check(size <= currentMax && currentMax <= maxTable, $"dynamic table size {size} over the limit {currentMax} (advertised {maxTable})");
    }

    /// <summary>Each field as a literal never indexed with a literal name (0x10), no Huffman, multi-byte lengths as needed.</summary>
    private static byte[] EncodeLiterals(List<(string Name, string Value)> fields)
    {
        var output = new List<byte>();
        foreach (var (name, value) in fields)
        {
            output.Add(0x10);
            AddString(output, name);
            AddString(output, value);
        }

        return [.. output];

        static void AddString(List<byte> output, string s)
        {
            var length = s.Length;
            if (length < 127)
            {
                output.Add((byte)length);
            }
            else
            {
                output.Add(127);
                length -= 127;
                while (length >= 128)
                {
                    output.Add((byte)((length & 0x7F) | 0x80));
                    length >>= 7;
                }

                output.Add((byte)length);
            }

            output.AddRange(Encoding.Latin1.GetBytes(s));
        }
    }

    /// <summary>
    /// WebSocket frame filter. First byte: bit 0 the client's direction (frames must be masked), bits 1-2 the message
    /// cap, bits 3-5 how reads are cut, bit 6 a small process budget. The inspector refuses a message that holds
    /// <c>STOP</c>, lower-cases one that holds <c>REPL</c>, and grows a control frame that holds <c>GROW</c> past
    /// 125 bytes. Invariants: the same frames and stop however reads are cut; what comes out parses again (a fresh
    /// filter of the same direction) into the same messages; no more inspected or written than came in; every byte
    /// of the budget is back after dispose.
    /// </summary>
    public static void WebSocketTarget(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        var mode = data[0];
        var fromClient = (mode & 1) != 0;
        long[] caps = [16, 125, 4096, 1024 * 1024];
        var maxMessage = caps[(mode >> 1) & 3];
        var cut = s_cuts[(mode >> 3) & 7];
        var capacity = (mode & 0x40) != 0 ? 256 : 16L * 1024 * 1024;
        var input = data.AsSpan(1).ToArray();

        List<(int Opcode, byte[] Payload)>? wholeFrames = null;
        WebSocketStop? wholeStop = null;
        byte[] wire = [];
        Bounded(input.Length, 8 * (int)Math.Min(maxMessage, capacity), () =>
            (wholeFrames, wholeStop, wire) = RunFilter(fromClient, maxMessage, capacity, input, input.Length));
        var (splitFrames, splitStop, _) = RunFilter(fromClient, maxMessage, capacity, input, cut);
        Check(SameFrames(wholeFrames!, splitFrames), $"frames differ when the input is read {cut} bytes at a time");
        Check(wholeStop?.CloseCode == splitStop?.CloseCode && wholeStop?.Reason == splitStop?.Reason,
            $"stop differs when read {cut} bytes at a time: {wholeStop?.CloseCode} vs {splitStop?.CloseCode}");

        // What the filter wrote is valid framing for the same direction and carries the same messages.
        var (again, againStop, _) = RunFilter(fromClient, long.MaxValue, 64L * 1024 * 1024, wire, wire.Length, passThrough: true);
        Check(againStop is null, $"the filter's own output was refused: {againStop?.Message}");
        Check(SameFrames(wholeFrames!, again), "the filter's own output parses into other frames");
    }

    private static (List<(int Opcode, byte[] Payload)> Frames, WebSocketStop? Stop, byte[] Wire) RunFilter(
        bool fromClient, long maxMessage, long capacity, byte[] input, int cut, bool passThrough = false)
    {
        var budget = new ResourceBudget("fuzz-websocket", capacity);
        var inspected = 0L;
        var frames = new List<(int Opcode, byte[] Payload)>();
        var wire = new List<byte>();
        WebSocketStop? stop;
        using (var filter = new WebSocketFrameFilter(fromClient, maxMessage, budget, (opcode, payload) =>
               {
                   inspected += payload.Length;
                   return passThrough ? WebSocketVerdict.Forward : Inspect(opcode, payload.Span);
               }))
        {
            for (var i = 0; i < input.Length && filter.Stop is null; i += cut)
            {
                filter.Feed(input.AsSpan(i, Math.Min(cut, input.Length - i)));
                while (filter.Output.TryDequeue(out var frame))
                {
                    var header = frame.Header.AsSpan(0, frame.HeaderLength);
                    var payload = frame.Payload is null ? [] : frame.Payload.AsSpan(0, frame.PayloadLength).ToArray();
                    wire.AddRange(header);
                    wire.AddRange(payload);
                    if ((header[1] & 0x80) != 0)
                    {
                        var key = header[^4..];
                        for (var j = 0; j < payload.Length; j++)
                        {
                            payload[j] ^= key[j & 3];
                        }
                    }

                    Check((header[0] & 0x80) != 0 && (header[0] & 0x70) == 0, "an output frame that is not final or has reserved bits");
                    Check(((header[1] & 0x80) != 0) == fromClient, "an output frame masked the wrong way");
                    frames.Add((header[0] & 0x0F, payload));
                    filter.Release(frame);
                }
            }

            stop = filter.Stop;
            Check(inspected <= input.Length, $"inspected {inspected} bytes of {input.Length}");
            Check(frames.Sum(f => (long)f.Payload.Length) <= input.Length, "more payload written than read");
            Check(budget.InUse <= Math.Max(maxMessage, 0) * 2 + 1024 * 1024, $"the budget holds {budget.InUse} bytes");
        }

        Check(budget.InUse == 0, $"{budget.InUse} bytes of the budget not given back after dispose");
        return (frames, stop, [.. wire]);
    }

    private static WebSocketVerdict Inspect(int opcode, ReadOnlySpan<byte> payload)
    {
        if (payload.IndexOf("STOP"u8) >= 0)
        {
            return new WebSocketVerdict(new WebSocketStop(WebSocketCodes.PolicyViolation, Policy.Decisions.Reasons.ContentFinding, "fuzz stop"), null);
        }

        if (opcode >= WebSocketCodes.Close && payload.IndexOf("GROW"u8) >= 0)
        {
            var grown = new byte[200];
            payload.CopyTo(grown);
            return new WebSocketVerdict(null, grown);
        }

        if (opcode < WebSocketCodes.Close && payload.IndexOf("REPL"u8) >= 0)
        {
            var lower = payload.ToArray();
            for (var i = 0; i < lower.Length; i++)
            {
                lower[i] = lower[i] is >= (byte)'A' and <= (byte)'Z' ? (byte)(lower[i] | 0x20) : lower[i];
            }

            return new WebSocketVerdict(null, lower);
        }

        return WebSocketVerdict.Forward;
    }

    private static bool SameFrames(List<(int Opcode, byte[] Payload)> a, List<(int Opcode, byte[] Payload)> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Opcode == p.Second.Opcode && p.First.Payload.AsSpan().SequenceEqual(p.Second.Payload));

    private static void Feed(byte[] input, int cut, Action<ReadOnlySpan<byte>> feed)
    {
        for (var i = 0; i < input.Length; i += cut)
        {
            feed(input.AsSpan(i, Math.Min(cut, input.Length - i)));
        }
    }

    /// <summary>
    /// Runs <paramref name="run"/> and checks the bounds: allocation at most 64 bytes per input byte plus
    /// <paramref name="fixedBytes"/> (the configured buffers) plus 64 KiB; time at most 20 ms plus 2 µs per input
    /// byte (when over, the fastest of three more runs decides, so a preemption or a GC is not a finding).
    /// </summary>
    private static void Bounded(int inputLength, int fixedBytes, Action run)
    {
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var started = Stopwatch.GetTimestamp();
        run();
        var elapsed = Stopwatch.GetElapsedTime(started);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        var allowed = (64L * inputLength) + fixedBytes + (64 * 1024);
        Check(allocated <= allowed, $"allocated {allocated} bytes for {inputLength} input bytes (bound {allowed})");
        var limit = TimeSpan.FromMilliseconds(20 + (0.002 * inputLength));
        if (elapsed > limit)
        {
            var best = elapsed;
            for (var i = 0; i < 3; i++)
            {
                started = Stopwatch.GetTimestamp();
                run();
                best = TimeSpan.FromTicks(Math.Min(best.Ticks, Stopwatch.GetElapsedTime(started).Ticks));
            }

            Check(best <= limit, $"{best.TotalMilliseconds:F1} ms for {inputLength} input bytes (bound {limit.TotalMilliseconds:F1} ms)");
        }
    }

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new FuzzInvariantException(message);
        }
    }
}
