using System.IO.Compression;

namespace ProxyGuard.Inspection.Decoding;

/// <summary>
/// Checks that a compressed body is exactly one compressed stream: nothing after its end (R7-4: bytes after a gzip
/// member or a zlib/brotli stream were forwarded but neither decoded nor scanned), and the stream is not cut short.
/// The decoders stop at the end of their stream and say nothing about what follows, so the check runs the decoder
/// again, into a scratch buffer, over a source that hands out the last bytes one at a time: a decoder that finishes
/// without asking for the final byte stopped before the end of the body, and one that asks past the final byte did
/// not finish. A gzip member's framing is read here (so its end is known exactly): the member must end with its
/// trailer at the end of the body; a second member is refused. The free-text fields of the gzip header (file name,
/// comment, extra field) are bytes the decoder does not produce either; they are handed back to be scanned.
/// </summary>
internal static class CompressedExtent
{
    private const int GzipTrailer = 8;

    /// <summary>
    /// Null when <paramref name="count"/> bytes at <paramref name="offset"/> are exactly one complete stream of
    /// <paramref name="coding"/>; otherwise why not. <paramref name="headerText"/>: the gzip header's free-text fields
    /// (empty when there are none).
    /// </summary>
    public static string? Check(byte[] input, int offset, int count, string coding, out ReadOnlyMemory<byte> headerText)
    {
        headerText = ReadOnlyMemory<byte>.Empty;
        switch (coding)
        {
            case "gzip":
                return CheckGzip(input, offset, count, out headerText);
            case "deflate" when Decompressor.IsZlib(input.AsSpan(offset, count)):
                return Ends(input, offset, count, 1, static s => new ZLibStream(s, CompressionMode.Decompress));
            case "deflate":
                return Ends(input, offset, count, 1, static s => new DeflateStream(s, CompressionMode.Decompress));
            case "br":
                return Ends(input, offset, count, 1, static s => new BrotliStream(s, CompressionMode.Decompress));
            default:
                return "unsupported coding";
        }
    }

    private static string? CheckGzip(byte[] input, int offset, int count, out ReadOnlyMemory<byte> headerText)
    {
        headerText = ReadOnlyMemory<byte>.Empty;
        var data = input.AsSpan(offset, count);
        if (data.Length < 10 || data[0] != 0x1F || data[1] != 0x8B || data[2] != 0x08)
        {
            return "not a gzip member";
        }

        var flags = data[3];
        if ((flags & 0xE0) != 0)
        {
            return "reserved gzip header flags";
        }

        var position = 10;
        var textStart = position;
        if ((flags & 0x04) != 0)
        {
            if (data.Length < position + 2)
            {
                return "truncated gzip header";
            }

            position += 2 + (data[position] | (data[position + 1] << 8));
        }

        for (var field = 0x08; field <= 0x10; field <<= 1)
        {
            if ((flags & field) != 0 && position <= data.Length)
            {
                var end = data[position..].IndexOf((byte)0);
                if (end < 0)
                {
                    return "truncated gzip header";
                }

                position += end + 1;
            }
        }

        if (position > data.Length)
        {
            return "truncated gzip header";
        }

        headerText = new ReadOnlyMemory<byte>(input, offset + textStart, position - textStart);
        if ((flags & 0x02) != 0)
        {
            position += 2;
        }

        var bodyLength = data.Length - position - GzipTrailer;
        if (bodyLength < 1)
        {
            return "truncated gzip member";
        }

        // The deflate data must end exactly where the 8-byte trailer starts; the trailer must end the body.
        return Ends(input, offset + position, bodyLength, 1, static s => new DeflateStream(s, CompressionMode.Decompress)) is { } error
            ? error + " (a gzip body must be one member ending at its trailer)"
            : null;
    }

    private static string? Ends(byte[] input, int offset, int count, int tail, Func<Stream, Stream> decoder)
    {
        using var source = new EdgeSource(input, offset, count, tail);
        var scratch = ScratchArrays<byte>.Rent(64 * 1024);
        try
        {
            using var stream = decoder(source);
            while (stream.Read(scratch, 0, scratch.Length) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or InvalidOperationException)
        {
            return "corrupt compressed data";
        }
        finally
        {
            ScratchArrays<byte>.Return(scratch);
        }

        if (source.AskedPastEnd)
        {
            return "the compressed stream is cut short";
        }

        return source.Handed < count ? "data after the end of the compressed stream" : null;
    }

    /// <summary>Hands out <c>count - tail</c> bytes as asked, then the last <c>tail</c> bytes one per read.</summary>
    private sealed class EdgeSource(byte[] data, int offset, int count, int tail) : Stream
    {
        public int Handed { get; private set; }

        public bool AskedPastEnd { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset1, int count1) => Read(buffer.AsSpan(offset1, count1));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty)
            {
                return 0;
            }

            var bulkEnd = Math.Max(0, count - tail);
            var n = Handed < bulkEnd ? Math.Min(buffer.Length, bulkEnd - Handed) : Math.Min(1, count - Handed);
            if (n == 0)
            {
                AskedPastEnd = true;
                return 0;
            }

            data.AsSpan(offset + Handed, n).CopyTo(buffer);
            Handed += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset1, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset1, int count1) => throw new NotSupportedException();
    }
}
