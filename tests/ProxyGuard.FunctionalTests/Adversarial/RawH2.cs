using System.Buffers.Binary;
using System.Text;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>One header field as a raw HPACK representation (no Huffman), so a test can send what clients never would.</summary>
public sealed record H(byte[] Bytes)
{
    /// <summary>An indexed field from the static table (2 = GET, 3 = POST, 7 = :scheme https).</summary>
    public static H StaticIndex(int index) => new(Integer(0x80, 7, index));

    /// <summary>An indexed field from the dynamic table (62 = the newest entry).</summary>
    public static H DynamicIndex(int index) => new(Integer(0x80, 7, index));

    /// <summary>A literal without indexing, with a literal name.</summary>
    public static H Literal(string name, string value) => new([.. Integer(0x00, 4, 0), .. String(name), .. String(value)]);

    /// <summary>A literal with incremental indexing (it enters the dynamic table of both sides).</summary>
    public static H Indexed(string name, string value) => new([.. Integer(0x40, 6, 0), .. String(name), .. String(value)]);

    private static byte[] String(string s)
    {
        var bytes = Encoding.Latin1.GetBytes(s);
        return [.. Integer(0x00, 7, bytes.Length), .. bytes];
    }

    private static byte[] Integer(byte pattern, int prefixBits, int value)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            return [(byte)(pattern | value)];
        }

        var bytes = new List<byte> { (byte)(pattern | max) };
        value -= max;
        while (value >= 128)
        {
            bytes.Add((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }
}

/// <summary>A minimal HTTP/2 client frame writer and reader over an established TLS stream (ALPN h2).</summary>
public sealed class RawH2(Stream stream)
{
    private readonly List<byte> _received = [];

    public async Task StartAsync()
    {
        await stream.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        await WriteFrameAsync(0x4, 0, 0, []);
    }

    public Task SendHeadersAsync(int streamId, bool endStream, H[] pseudo, params H[] fields)
    {
        var block = pseudo.Concat(fields).SelectMany(h => h.Bytes).ToArray();
        return WriteFrameAsync(0x1, (byte)(0x4 | (endStream ? 0x1 : 0)), streamId, block);
    }

    public Task SendDataAsync(int streamId, byte[] data, bool endStream) =>
        WriteFrameAsync(0x0, (byte)(endStream ? 0x1 : 0), streamId, data);

    /// <summary>
    /// Reads until each stream got its response HEADERS (or was reset: status 0). The status is read from the
    /// first header representation, which Kestrel sends as a static-table index for 200 and 400.
    /// </summary>
    public async Task<Dictionary<int, int>> ReadStatusesAsync(int[] streams, TimeSpan timeout)
    {
        var statuses = new Dictionary<int, int>();
        using var cts = new CancellationTokenSource(timeout);
        var chunk = new byte[16 * 1024];
        var offset = 0;
        while (streams.Any(s => !statuses.ContainsKey(s)))
        {
            while (_received.Count - offset >= 9)
            {
                var header = _received.GetRange(offset, 9).ToArray();
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                if (_received.Count - offset < 9 + length)
                {
                    break;
                }

                var type = header[3];
                var id = (int)(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(5)) & 0x7FFFFFFF);
                var payload = _received.GetRange(offset + 9, length).ToArray();
                offset += 9 + length;
                if (type == 0x1 && !statuses.ContainsKey(id))
                {
                    var first = payload.Length > 0 ? payload[0] : (byte)0;
                    statuses[id] = first switch { 0x88 => 200, 0x8C => 400, 0x8D => 404, _ => -first };
                }
                else if (type == 0x3)
                {
                    statuses.TryAdd(id, 0);
                }
                else if (type == 0x4 && (header[4] & 0x1) == 0)
                {
                    await WriteFrameAsync(0x4, 0x1, 0, []); // SETTINGS ack
                }
            }

            int n;
            try
            {
                n = await stream.ReadAsync(chunk, cts.Token);
            }
            catch (OperationCanceledException)
            {
                break; // the caller's assertions show which stream got nothing
            }

            if (n == 0)
            {
                break;
            }

            _received.AddRange(chunk.AsSpan(0, n).ToArray());
        }

        return statuses;
    }

    private async Task WriteFrameAsync(byte type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), (uint)streamId);
        payload.CopyTo(frame, 9);
        await stream.WriteAsync(frame);
        await stream.FlushAsync();
    }
}
