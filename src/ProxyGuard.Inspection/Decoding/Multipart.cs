using System.Text;

namespace ProxyGuard.Inspection.Decoding;

internal readonly record struct MultipartPart(int BodyStart, int BodyEnd, string? ContentType, string? TransferEncoding, string? ContentEncoding);

/// <summary>Splits a multipart body (RFC 2046) into parts with their own headers. Tolerates LF-only line ends.</summary>
internal static class Multipart
{
    private const int MaxParts = 10_000;
    private const int MaxHeaderBytes = 16 * 1024;

    public static List<MultipartPart> Parse(ReadOnlySpan<byte> body, string boundary)
    {
        var parts = new List<MultipartPart>();
        var delimiter = Encoding.Latin1.GetBytes("--" + boundary);
        var pos = FindDelimiter(body, delimiter, 0, atStart: true);
        while (pos >= 0 && parts.Count < MaxParts)
        {
            var after = pos + delimiter.Length;
            if (after + 1 < body.Length && body[after] == (byte)'-' && body[after + 1] == (byte)'-')
            {
                break;
            }

            var lineEnd = body[after..].IndexOf((byte)'\n');
            if (lineEnd < 0)
            {
                break;
            }

            var headersStart = after + lineEnd + 1;
            var headerLimit = Math.Min(body.Length, headersStart + MaxHeaderBytes);
            var headers = body[headersStart..headerLimit];
            var blank = FindBlankLine(headers, out var blankLength);
            if (blank < 0)
            {
                break;
            }

            var bodyStart = headersStart + blank + blankLength;
            var next = FindDelimiter(body, delimiter, bodyStart, atStart: false);
            var bodyEnd = next < 0 ? body.Length : next;

            // The CRLF (or LF) before the delimiter belongs to the delimiter.
            if (next >= 0)
            {
                bodyEnd--;
                if (bodyEnd > bodyStart && body[bodyEnd - 1] == (byte)'\r')
                {
                    bodyEnd--;
                }
            }

            string? contentType = null;
            string? transfer = null;
            string? encoding = null;
            foreach (var lineRange in headers[..blank].Split((byte)'\n'))
            {
                var line = Encoding.Latin1.GetString(headers[..blank][lineRange]).Trim();
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    continue;
                }

                var name = line.AsSpan(0, colon).Trim();
                var value = line[(colon + 1)..].Trim();
                if (name.Equals("content-type", StringComparison.OrdinalIgnoreCase))
                {
                    contentType = value;
                }
                else if (name.Equals("content-transfer-encoding", StringComparison.OrdinalIgnoreCase))
                {
                    transfer = value.ToLowerInvariant();
                }
                else if (name.Equals("content-encoding", StringComparison.OrdinalIgnoreCase))
                {
                    encoding = value;
                }
            }

            parts.Add(new MultipartPart(bodyStart, Math.Max(bodyStart, bodyEnd), contentType, transfer, encoding));
            pos = next;
        }

        return parts;
    }

    private static int FindDelimiter(ReadOnlySpan<byte> body, ReadOnlySpan<byte> delimiter, int from, bool atStart)
    {
        if (atStart && body.StartsWith(delimiter))
        {
            return 0;
        }

        var i = from;
        while (i < body.Length)
        {
            var found = body[i..].IndexOf(delimiter);
            if (found < 0)
            {
                return -1;
            }

            var at = i + found;
            if (at > 0 && body[at - 1] == (byte)'\n')
            {
                return at;
            }

            i = at + 1;
        }

        return -1;
    }

    private static int FindBlankLine(ReadOnlySpan<byte> headers, out int length)
    {
        if (headers.StartsWith("\r\n"u8))
        {
            length = 2;
            return 0;
        }

        if (headers.StartsWith("\n"u8))
        {
            length = 1;
            return 0;
        }

        // One pass over the line feeds up to the first blank line (CRLF CRLF or LF LF, whichever comes first), so a
        // part costs the length of its own headers; searching all 16 KiB for each pattern cost O(parts x 16 KiB).
        var p = 0;
        while (p < headers.Length)
        {
            var found = headers[p..].IndexOf((byte)'\n');
            if (found < 0)
            {
                break;
            }

            p += found;
            if (p >= 1 && headers[p - 1] == (byte)'\r' && p + 2 < headers.Length && headers[p + 1] == (byte)'\r' && headers[p + 2] == (byte)'\n')
            {
                length = 4;
                return p - 1;
            }

            if (p + 1 < headers.Length && headers[p + 1] == (byte)'\n')
            {
                length = 2;
                return p;
            }

            p++;
        }

        length = 0;
        return -1;
    }
}
