using System.Buffers;
using System.IO.Compression;

namespace ProxyGuard.Inspection.Decoding;

internal enum DecompressStatus
{
    Ok,
    Corrupt,
    LimitExceeded,

    /// <summary>The process-wide decompression budget had no room for more output.</summary>
    BudgetExhausted,
}

/// <summary>
/// Streams gzip / zlib / raw deflate / brotli into pooled segments and stops as soon as the output passes the limit,
/// so a decompression bomb costs at most <c>limit</c> bytes of memory and the time to produce them. With a lease on
/// the process-wide decompression budget, every segment is reserved before it is filled and the contiguous output
/// before it is copied; the segments' share is given back once they are returned to the pool, and the output's share
/// stays on the lease until its owner (the scan) releases the lease.
/// </summary>
internal static class Decompressor
{
    private const int SegmentSize = 256 * 1024;

    public static bool IsGzip(ReadOnlySpan<byte> data) => data.Length >= 3 && data[0] == 0x1F && data[1] == 0x8B && data[2] == 0x08;

    public static bool IsZlib(ReadOnlySpan<byte> data) =>
        data.Length >= 2 && (data[0] & 0x0F) == 8 && (data[0] >> 4) <= 7 && ((data[0] << 8) | data[1]) % 31 == 0;

    /// <summary>
    /// False when the zlib stream at <paramref name="data"/> (a valid zlib header) is certainly refused by the inflater
    /// at its first block: block type 3 (reserved), or a stored block whose length and its complement disagree. A cheap,
    /// exact pre-check: it saves creating an inflater for most zlib-looking bytes and never rejects a stream the
    /// inflater would accept.
    /// </summary>
    public static bool MayBeZlibStream(ReadOnlySpan<byte> data)
    {
        if (data.Length < 3)
        {
            return true;
        }

        var blockType = (data[2] >> 1) & 3;
        if (blockType == 3)
        {
            return false;
        }

        if (blockType == 0 && data.Length >= 7)
        {
            var length = data[3] | (data[4] << 8);
            var complement = data[5] | (data[6] << 8);
            return length == (~complement & 0xFFFF);
        }

        return true;
    }

    /// <summary>Decompresses <paramref name="input"/> (array segment) with the given coding: gzip, deflate, br.</summary>
    public static DecompressStatus Decompress(byte[] input, int offset, int count, string coding, long limit, out PooledBytes output, Budgets.ResourceLease? lease = null)
    {
        output = default;
        using var source = new MemoryStream(input, offset, count, writable: false);
        Stream stream;
        switch (coding)
        {
            case "gzip":
                stream = new GZipStream(source, CompressionMode.Decompress);
                break;
            case "deflate":
                stream = IsZlib(input.AsSpan(offset, count))
                    ? new ZLibStream(source, CompressionMode.Decompress)
                    : new DeflateStream(source, CompressionMode.Decompress);
                break;
            case "br":
                stream = new BrotliStream(source, CompressionMode.Decompress);
                break;
            default:
                return DecompressStatus.Corrupt;
        }

        using (stream)
        {
            return ReadAll(stream, limit, lease, out output);
        }
    }

    private static DecompressStatus ReadAll(Stream stream, long limit, Budgets.ResourceLease? lease, out PooledBytes output)
    {
        output = default;
        var pool = ArrayPool<byte>.Shared;
        var segments = new List<byte[]>();
        long reserved = 0;
        long total = 0;
        var filled = 0;
        byte[]? current = null;
        try
        {
            while (true)
            {
                if (current is null || filled == current.Length)
                {
                    if (current is not null)
                    {
                        segments.Add(current);
                    }

                    if (lease is not null && !lease.TryGrow(SegmentSize))
                    {
                        return DecompressStatus.BudgetExhausted;
                    }

                    reserved += SegmentSize;
                    current = pool.Rent(SegmentSize);
                    filled = 0;
                }

                int read;
                try
                {
                    read = stream.Read(current, filled, current.Length - filled);
                }
                catch (InvalidDataException)
                {
                    return DecompressStatus.Corrupt;
                }
                catch (IOException)
                {
                    return DecompressStatus.Corrupt;
                }
                catch (InvalidOperationException)
                {
                    // BrotliStream reports corrupt input this way ("Decoder ran into invalid data"; found by AFL++ on
                    // the scan-br target, fuzz/regressions/scan-br).
                    return DecompressStatus.Corrupt;
                }

                if (read == 0)
                {
                    break;
                }

                filled += read;
                total += read;
                if (total > limit)
                {
                    return DecompressStatus.LimitExceeded;
                }
            }

            if (lease is not null && !lease.TryGrow(total))
            {
                return DecompressStatus.BudgetExhausted;
            }

            var result = ScratchArrays<byte>.Rent((int)Math.Max(total, 1));
            var position = 0;
            foreach (var segment in segments)
            {
                segment.AsSpan().CopyTo(result.AsSpan(position));
                position += segment.Length;
            }

            if (current is not null)
            {
                current.AsSpan(0, filled).CopyTo(result.AsSpan(position));
            }

            output = new PooledBytes(result, (int)total);
            return DecompressStatus.Ok;
        }
        finally
        {
            foreach (var segment in segments)
            {
                pool.Return(segment);
            }

            if (current is not null)
            {
                pool.Return(current);
            }

            lease?.Shrink(reserved);
        }
    }
}
