using System.Text;

namespace ProxyGuard.Inspection.Decoding;

/// <summary>
/// Bodies written in UTF-16 or UTF-32: told by a byte-order mark, by a declared <c>charset</c>, or (as Python's
/// <c>json.loads</c> on bytes does) by the zero bytes among the first four. Such a body is transcoded to UTF-8 before
/// the detectors, which read bytes as ASCII-compatible text.
/// </summary>
internal static class WideText
{
    /// <summary>
    /// Which wide encoding <paramref name="bytes"/> are in, or <see cref="WideEncoding.None"/>. <paramref name="bomLength"/>
    /// is the byte-order mark's length to skip; <paramref name="declared"/> is true when a byte-order mark or an explicit
    /// charset fixes the encoding (an invalid sequence then fails the scan; a guessed encoding is decoded leniently).
    /// <paramref name="bothOrders"/> is true when the charset names the encoding without its byte order and the
    /// body has no byte-order mark: both orders are read.
    /// </summary>
    public static WideEncoding Detect(ReadOnlySpan<byte> bytes, string? contentType, out int bomLength, out bool declared, out bool bothOrders)
    {
        bomLength = 0;
        declared = true;
        bothOrders = false;

        // Byte-order marks first (UTF-32 LE's mark begins with UTF-16 LE's).
        if (bytes.Length >= 4 && bytes[0] == 0xFF && bytes[1] == 0xFE && bytes[2] == 0 && bytes[3] == 0)
        {
            bomLength = 4;
            return WideEncoding.Utf32LittleEndian;
        }

        if (bytes.Length >= 4 && bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0xFE && bytes[3] == 0xFF)
        {
            bomLength = 4;
            return WideEncoding.Utf32BigEndian;
        }

        if (bytes.Length >= 2 && bytes[0] == 0xFF && bytes[1] == 0xFE)
        {
            bomLength = 2;
            return WideEncoding.Utf16LittleEndian;
        }

        if (bytes.Length >= 2 && bytes[0] == 0xFE && bytes[1] == 0xFF)
        {
            bomLength = 2;
            return WideEncoding.Utf16BigEndian;
        }

        if (MediaType.Parameter(contentType, "charset") is { } charset)
        {
            var named = FromCharset(charset.Trim(), out var ordered);
            if (named != WideEncoding.None)
            {
                if (!ordered)
                {
                    bothOrders = true;
                }

                return named;
            }
        }

        // No mark, no wide charset: the zero-byte pattern of the first four bytes (what json.detect_encoding reads).
        declared = false;
        if (bytes.Length >= 4)
        {
            if (bytes[0] == 0 && bytes[1] == 0)
            {
                return WideEncoding.Utf32BigEndian;
            }

            if (bytes[1] == 0 && bytes[2] == 0 && bytes[3] == 0)
            {
                return WideEncoding.Utf32LittleEndian;
            }
        }

        if (bytes.Length >= 2)
        {
            if (bytes[0] == 0)
            {
                return WideEncoding.Utf16BigEndian;
            }

            if (bytes[1] == 0)
            {
                return WideEncoding.Utf16LittleEndian;
            }
        }

        return WideEncoding.None;
    }

    /// <summary>The same encoding in the other byte order.</summary>
    public static WideEncoding Swapped(WideEncoding encoding) => encoding switch
    {
        WideEncoding.Utf16LittleEndian => WideEncoding.Utf16BigEndian,
        WideEncoding.Utf16BigEndian => WideEncoding.Utf16LittleEndian,
        WideEncoding.Utf32LittleEndian => WideEncoding.Utf32BigEndian,
        WideEncoding.Utf32BigEndian => WideEncoding.Utf32LittleEndian,
        _ => WideEncoding.None,
    };

    public static string Name(WideEncoding encoding) => encoding switch
    {
        WideEncoding.Utf16LittleEndian => "utf-16le",
        WideEncoding.Utf16BigEndian => "utf-16be",
        WideEncoding.Utf32LittleEndian => "utf-32le",
        WideEncoding.Utf32BigEndian => "utf-32be",
        _ => "none",
    };

    /// <summary>An upper bound of the UTF-8 length of <paramref name="byteCount"/> bytes in <paramref name="encoding"/>.</summary>
    public static int MaxUtf8Length(WideEncoding encoding, int byteCount) =>
        encoding is WideEncoding.Utf16LittleEndian or WideEncoding.Utf16BigEndian
            ? (int)Math.Min(int.MaxValue, ((long)(byteCount + 1) / 2 * 3) + 3)
            : byteCount + 3;

    /// <summary>
    /// Transcodes <paramref name="source"/> to UTF-8 in <paramref name="destination"/> (at least
    /// <see cref="MaxUtf8Length"/> long), one linear pass. Strict: false on an invalid sequence (a lone surrogate, a
    /// code point past U+10FFFF, a trailing partial unit). Lenient: invalid sequences become U+FFFD.
    /// </summary>
    public static bool TryTranscode(ReadOnlySpan<byte> source, WideEncoding encoding, bool strict, Span<byte> destination, out int written)
    {
        written = 0;
        var unit = encoding is WideEncoding.Utf16LittleEndian or WideEncoding.Utf16BigEndian ? 2 : 4;
        if (strict && source.Length % unit != 0)
        {
            return false;
        }

        var big = encoding is WideEncoding.Utf16BigEndian or WideEncoding.Utf32BigEndian;
        var n = source.Length - (source.Length % unit);
        var i = 0;
        while (i < n)
        {
            int scalar;
            if (unit == 2)
            {
                int u = big ? (source[i] << 8) | source[i + 1] : source[i] | (source[i + 1] << 8);
                i += 2;
                if (u is >= 0xD800 and <= 0xDBFF && i < n)
                {
                    int low = big ? (source[i] << 8) | source[i + 1] : source[i] | (source[i + 1] << 8);
                    if (low is >= 0xDC00 and <= 0xDFFF)
                    {
                        i += 2;
                        scalar = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                    }
                    else
                    {
                        scalar = -1;
                    }
                }
                else
                {
                    scalar = u is >= 0xD800 and <= 0xDFFF ? -1 : u;
                }
            }
            else
            {
                long v = big
                    ? ((long)source[i] << 24) | ((long)source[i + 1] << 16) | ((long)source[i + 2] << 8) | source[i + 3]
                    : source[i] | ((long)source[i + 1] << 8) | ((long)source[i + 2] << 16) | ((long)source[i + 3] << 24);
                i += 4;
                scalar = v > 0x10FFFF || v is >= 0xD800 and <= 0xDFFF ? -1 : (int)v;
            }

            if (scalar < 0)
            {
                if (strict)
                {
                    return false;
                }

                scalar = 0xFFFD;
            }

            written += new Rune(scalar).EncodeToUtf8(destination[written..]);
        }

        if (n < source.Length)
        {
            if (strict)
            {
                return false;
            }

            written += new Rune(0xFFFD).EncodeToUtf8(destination[written..]);
        }

        return true;
    }

    private static WideEncoding FromCharset(string charset, out bool ordered)
    {
        ordered = true;
        if (charset.Equals("utf-16le", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf16le", StringComparison.OrdinalIgnoreCase))
        {
            return WideEncoding.Utf16LittleEndian;
        }

        if (charset.Equals("utf-16be", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf16be", StringComparison.OrdinalIgnoreCase))
        {
            return WideEncoding.Utf16BigEndian;
        }

        if (charset.Equals("utf-32le", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf32le", StringComparison.OrdinalIgnoreCase))
        {
            return WideEncoding.Utf32LittleEndian;
        }

        if (charset.Equals("utf-32be", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf32be", StringComparison.OrdinalIgnoreCase))
        {
            return WideEncoding.Utf32BigEndian;
        }

        ordered = false;
        if (charset.Equals("utf-16", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf16", StringComparison.OrdinalIgnoreCase)
            || charset.Equals("ucs-2", StringComparison.OrdinalIgnoreCase) || charset.Equals("unicode", StringComparison.OrdinalIgnoreCase))
        {
            return WideEncoding.Utf16LittleEndian;
        }

        if (charset.Equals("utf-32", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf32", StringComparison.OrdinalIgnoreCase)
            || charset.Equals("ucs-4", StringComparison.OrdinalIgnoreCase))
        {
            return WideEncoding.Utf32LittleEndian;
        }

        return WideEncoding.None;
    }
}

internal enum WideEncoding
{
    None,
    Utf16LittleEndian,
    Utf16BigEndian,
    Utf32LittleEndian,
    Utf32BigEndian,
}
