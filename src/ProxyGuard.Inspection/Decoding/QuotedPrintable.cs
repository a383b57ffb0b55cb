namespace ProxyGuard.Inspection.Decoding;

/// <summary>MIME quoted-printable decoding (RFC 2045 6.7): <c>=XX</c> escapes and soft line breaks.</summary>
internal static class QuotedPrintable
{
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var n = 0;
        var i = 0;
        while (i < source.Length)
        {
            var b = source[i];
            if (b == (byte)'=')
            {
                if (i + 1 < source.Length && source[i + 1] == (byte)'\n')
                {
                    i += 2;
                    continue;
                }

                if (i + 2 < source.Length && source[i + 1] == (byte)'\r' && source[i + 2] == (byte)'\n')
                {
                    i += 3;
                    continue;
                }

                if (i + 2 < source.Length && char.IsAsciiHexDigit((char)source[i + 1]) && char.IsAsciiHexDigit((char)source[i + 2]))
                {
                    destination[n++] = (byte)((TextUnescaper.HexValue((char)source[i + 1]) << 4) | TextUnescaper.HexValue((char)source[i + 2]));
                    i += 3;
                    continue;
                }
            }

            destination[n++] = b;
            i++;
        }

        return n;
    }
}
