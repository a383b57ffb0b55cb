using System.Buffers;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>Multipart bodies: each part's transfer encoding (base64, quoted-printable) and content-coding undone, then scanned as a document.</summary>
internal sealed partial class ScanSession
{
    private void ScanMultipart(ReadOnlySpan<byte> bytes, ReadOnlySpan<char> text, string boundary, int depth, LayerMap? map)
    {
        foreach (var part in Multipart.Parse(bytes, boundary))
        {
            Tick(part.BodyEnd - part.BodyStart + 64);
            if (Error is not null)
            {
                return;
            }

            var partBytes = bytes[part.BodyStart..part.BodyEnd];
            if (partBytes.IsEmpty)
            {
                continue;
            }

            var wholeMap = LayerMap.Whole(map, part.BodyStart, part.BodyEnd);
            switch (part.TransferEncoding)
            {
                case "base64":
                {
                    var buffer = ScratchArrays<byte>.Rent(Base64.MaxDecodedLength(partBytes.Length));
                    try
                    {
                        var count = DecodeBase64Lines(text[part.BodyStart..part.BodyEnd], buffer);
                        if (Charge(count))
                        {
                            ScanPartContent(buffer, count, part, depth + 1, wholeMap);
                        }
                    }
                    finally
                    {
                        ScratchArrays<byte>.Return(buffer);
                    }

                    break;
                }

                case "quoted-printable":
                {
                    var buffer = ScratchArrays<byte>.Rent(partBytes.Length);
                    try
                    {
                        var count = QuotedPrintable.Decode(partBytes, buffer);
                        if (Charge(count))
                        {
                            ScanPartContent(buffer, count, part, depth + 1, wholeMap);
                        }
                    }
                    finally
                    {
                        ScratchArrays<byte>.Return(buffer);
                    }

                    break;
                }

                default:
                    if (part.ContentEncoding is null && !_inWide && WideText.Detect(partBytes, part.ContentType, out _, out _, out _) != WideEncoding.None)
                    {
                        // A UTF-16/32 part: transcoded and scanned like a body of its own.
                        TryScanWide(partBytes, part.ContentType, depth + 1, LayerMap.Shift(map, part.BodyStart));
                    }
                    else if (part.ContentEncoding is not null || MediaType.IsMultipart(part.ContentType) || MediaType.IsForm(part.ContentType))
                    {
                        var copy = ScratchArrays<byte>.Rent(partBytes.Length);
                        try
                        {
                            partBytes.CopyTo(copy);
                            ScanPartContent(copy, partBytes.Length, part, depth + 1, part.ContentEncoding is null ? LayerMap.Shift(map, part.BodyStart) : wholeMap);
                        }
                        finally
                        {
                            ScratchArrays<byte>.Return(copy);
                        }
                    }

                    break;
            }
        }
    }

    private void ScanPartContent(byte[] buffer, int count, MultipartPart part, int depth, LayerMap map)
    {
        var coding = part.ContentEncoding?.Trim().ToLowerInvariant();
        if (coding is null or "" or "identity" || count == 0)
        {
            ScanDocument(buffer.AsSpan(0, count), part.ContentType, depth, map);
            return;
        }

        coding = coding == "x-gzip" ? "gzip" : coding;
        if (coding is not ("gzip" or "deflate" or "br"))
        {
            Fail("undecodable content-encoding: " + ContentScanner.SafeCodingName(coding), ScanErrorKind.Undecodable);
            return;
        }

        if (TryDecompress(buffer, 0, count, coding, out var inflated))
        {
            using (inflated)
            {
                RunKnownValues(inflated.Span);
                ScanDocument(inflated.Span, part.ContentType, depth, map);
            }
        }
    }

    private static int DecodeBase64Lines(ReadOnlySpan<char> text, Span<byte> destination)
    {
        var written = 0;
        foreach (var range in text.Split('\n'))
        {
            var line = text[range].Trim();
            if (line.IsEmpty)
            {
                continue;
            }

            written += Base64.Decode(line, destination[written..]);
        }

        return written;
    }
}
