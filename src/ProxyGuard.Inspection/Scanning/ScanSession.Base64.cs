using System.Buffers;
using System.Numerics;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// Base64 runs (<see cref="Base64RunFinder"/>) and short-line wrapped blocks (<see cref="WrappedBase64"/>): a run
/// whose first 128 characters decode to text (at one of the four alignments) or to gzip/zlib is decoded and scanned
/// as the next layer. Runs of one layer are disjoint; each is decoded at most four times (once per alignment, only
/// when a compressed candidate turns out corrupt), so a layer of n characters yields at most ~3n bytes of decoding.
/// </summary>
internal sealed partial class ScanSession
{
    private const int SampleChars = 128;

    /// <summary>Decoded base64 runs up to this many bytes are decoded on the stack.</summary>
    private const int SmallRun = 256;

    private void RunBase64<T>(ReadOnlySpan<T> text, int depth, LayerMap? map)
        where T : unmanaged, IBinaryInteger<T>
    {
        var position = 0;
        while (Error is null && Base64RunFinder.FindNext(text, position, out var runStart, out var runEnd))
        {
            Tick(runEnd - position);
            HandleRun(text[runStart..runEnd], runStart, runEnd, depth, map);
            position = runEnd;
        }
    }

    /// <summary>Base64 wrapped at lines shorter than the run finder joins (4 to 39 characters), decoded as one run.</summary>
    private void RunWrappedBase64<T>(ReadOnlySpan<T> text, int depth, LayerMap? map)
        where T : unmanaged, IBinaryInteger<T>
    {
        var position = 0;
        while (Error is null && WrappedBase64.FindNext(text, position, out var start, out var end))
        {
            Tick(end - position);
            HandleRun(text[start..end], start, end, depth, map);
            position = end;
        }
    }

    /// <summary>Decodes and scans one run (characters [runStart, runEnd) of its layer); small runs are decoded on the stack.</summary>
    private void HandleRun<T>(ReadOnlySpan<T> run, int runStart, int runEnd, int depth, LayerMap? map)
        where T : unmanaged, IBinaryInteger<T>
    {
        // Base64 of text or of compressed data practically always mixes upper and lower case; identifiers,
        // hex digests and UUIDs usually do not.
        if (run.IndexOfAnyInRange(T.CreateTruncating('A'), T.CreateTruncating('Z')) < 0
            || run.IndexOfAnyInRange(T.CreateTruncating('a'), T.CreateTruncating('z')) < 0)
        {
            return;
        }

        Span<byte> sample = stackalloc byte[(SampleChars * 3 / 4) + 3];
        Span<byte> small = stackalloc byte[SmallRun];
        for (var align = 0; align < 4; align++)
        {
            var candidate = run[align..];
            if (candidate.Length < Base64RunFinder.MinRun)
            {
                return;
            }

            var sampleLength = Base64.Decode(candidate[..Math.Min(candidate.Length, SampleChars)], sample);
            var head = sample[..sampleLength];
            var compressed = Decompressor.IsGzip(head) ? "gzip" : Decompressor.IsZlib(head) ? "deflate" : null;
            if (compressed is null ? !Base64.LooksLikeText(head) : compressed == "deflate" && !Decompressor.MayBeZlibStream(head))
            {
                // Neither text nor a compressed stream the inflater could accept (as if the attempt had failed).
                continue;
            }

            if (depth >= _maxDepth)
            {
                Fail(DepthError, ScanErrorKind.DepthLimit);
                return;
            }

            var maxLength = Base64.MaxDecodedLength(candidate.Length);
            byte[]? rented = null;
            var buffer = maxLength <= SmallRun ? small : (rented = ScratchArrays<byte>.Rent(maxLength));
            try
            {
                var count = Base64.Decode(candidate, buffer);
                if (!Charge(count))
                {
                    return;
                }

                if (ScanDecodedRun(buffer[..count], compressed, depth, LayerMap.Whole(map, runStart, runEnd)))
                {
                    return;
                }
            }
            finally
            {
                if (rented is not null)
                {
                    ScratchArrays<byte>.Return(rented);
                }
            }
        }
    }

    /// <summary>Scans a decoded base64 run (inflating it first when compressed); true when done with the run.</summary>
    private bool ScanDecodedRun(ReadOnlySpan<byte> decoded, string? compressed, int depth, LayerMap childMap)
    {
        if (compressed is null)
        {
            ScanDocument(decoded, null, depth + 1, childMap);
            return true;
        }

        var copy = ScratchArrays<byte>.Rent(decoded.Length);
        try
        {
            decoded.CopyTo(copy);
            var status = Decompress(copy, 0, decoded.Length, compressed, out var inflated);
            using (inflated)
            {
                if (status is DecompressStatus.LimitExceeded or DecompressStatus.BudgetExhausted)
                {
                    return true;
                }

                if (status == DecompressStatus.Ok && Charge(inflated.Length))
                {
                    RunKnownValues(inflated.Span);
                    ScanDocument(inflated.Span, null, depth + 1, childMap);
                    return true;
                }
            }

            return Error is not null;
        }
        finally
        {
            ScratchArrays<byte>.Return(copy);
        }
    }
}
