using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// UTF-16 and UTF-32 text (a byte-order mark, a declared charset, or the zero-byte pattern that Python's JSON reader
/// goes by): transcoded to UTF-8 in one linear pass and scanned as a document, so the detectors that read bytes as
/// ASCII-compatible text see it. The output is charged to the decode budget; an invalid sequence in a declared
/// encoding fails the scan (<see cref="ScanErrorKind.Undecodable"/>), a guessed encoding is read leniently.
/// </summary>
internal sealed partial class ScanSession
{
    private const string UndecodableText = "undecodable text: ";

    /// <summary>True while a transcoded layer is scanned: its parts are UTF-8 already, whatever they declare.</summary>
    private bool _inWide;

    /// <summary>Transcodes and scans <paramref name="bytes"/> when they are wide text; false when they are not.</summary>
    private bool TryScanWide(ReadOnlySpan<byte> bytes, string? contentType, int depth, LayerMap? map)
    {
        if (_inWide)
        {
            return false;
        }

        var encoding = WideText.Detect(bytes, contentType, out var bom, out var declared, out var bothOrders);
        if (encoding == WideEncoding.None)
        {
            return false;
        }

        var body = bytes[bom..];
        var wholeMap = LayerMap.Whole(map, 0, bytes.Length);
        if (bothOrders)
        {
            // "utf-16" without a mark: readers differ on the byte order, so both are scanned; neither is strict.
            ScanTranscoded(body, encoding, strict: false, contentType, depth, wholeMap);
            ScanTranscoded(body, WideText.Swapped(encoding), strict: false, contentType, depth, wholeMap);
        }
        else
        {
            ScanTranscoded(body, encoding, strict: declared, contentType, depth, wholeMap);
        }

        return true;
    }

    private void ScanTranscoded(ReadOnlySpan<byte> source, WideEncoding encoding, bool strict, string? contentType, int depth, LayerMap map)
    {
        if (Error is not null || source.IsEmpty)
        {
            return;
        }

        Tick(source.Length);
        var buffer = ScratchArrays<byte>.Rent(WideText.MaxUtf8Length(encoding, source.Length));
        try
        {
            if (!WideText.TryTranscode(source, encoding, strict, buffer, out var written))
            {
                Fail(UndecodableText + WideText.Name(encoding), ScanErrorKind.Undecodable);
                return;
            }

            if (!Charge(written))
            {
                return;
            }

            _inWide = true;
            try
            {
                var utf8 = buffer.AsSpan(0, written);
                RunKnownValues(utf8);
                ScanDocument(utf8, contentType, depth + 1, map);
            }
            finally
            {
                _inWide = false;
            }
        }
        finally
        {
            ScratchArrays<byte>.Return(buffer);
        }
    }
}
