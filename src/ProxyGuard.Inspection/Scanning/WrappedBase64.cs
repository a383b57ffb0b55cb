using System.Numerics;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// Finds base64 wrapped at short line lengths (4 to 39 characters, a multiple of 4, LF or CRLF), which
/// <see cref="Base64RunFinder"/> does not join (it joins lines of 40 and more): two or more whole lines of the same
/// length, then optionally a shorter last line with up to two <c>=</c>, at least <see cref="Base64RunFinder.MinRun"/>
/// base64 characters in all. The block is decoded like a run (line breaks are skipped by the decoder).
/// One pass over the line feeds; each line's characters are looked at at most twice, so O(n).
/// </summary>
internal static class WrappedBase64
{
    public const int MinLine = 4;
    public const int MaxLine = 39;

    /// <summary>The next block starting at a line start at or after <paramref name="from"/>; false when none.</summary>
    public static bool FindNext<T>(ReadOnlySpan<T> text, int from, out int start, out int end)
        where T : unmanaged, IBinaryInteger<T>
    {
        var line = from;
        if (line > 0 && int.CreateTruncating(text[line - 1]) != '\n')
        {
            line = NextLine(text, line);
        }

        while (line < text.Length)
        {
            var (width, next) = Line(text, line);
            if (width < MinLine || width > MaxLine || width % 4 != 0 || !AllAlphabet(text.Slice(line, width)))
            {
                line = next;
                continue;
            }

            var count = 1;
            var last = line + width;
            var cursor = next;
            while (cursor < text.Length)
            {
                var (w, n) = Line(text, cursor);
                if (w == width && AllAlphabet(text.Slice(cursor, w)))
                {
                    count++;
                    last = cursor + w;
                    cursor = n;
                    continue;
                }

                // A shorter (or padded) last line.
                if (w > 0 && w <= width && IsLastLine(text.Slice(cursor, w)))
                {
                    count++;
                    last = cursor + w;
                    cursor = n;
                }

                break;
            }

            if (count >= 2 && (last - line) - (count - 1) >= Base64RunFinder.MinRun)
            {
                start = line;
                end = last;
                return true;
            }

            line = count >= 2 ? cursor : next;
        }

        start = end = text.Length;
        return false;
    }

    /// <summary>The content width of the line starting at <paramref name="start"/> (without CR LF) and the next line's start.</summary>
    private static (int Width, int Next) Line<T>(ReadOnlySpan<T> text, int start)
        where T : unmanaged, IBinaryInteger<T>
    {
        var lf = text[start..].IndexOf(T.CreateTruncating('\n'));
        var end = lf < 0 ? text.Length : start + lf;
        var next = lf < 0 ? text.Length : end + 1;
        var content = end > start && int.CreateTruncating(text[end - 1]) == '\r' ? end - 1 : end;
        return (content - start, next);
    }

    private static int NextLine<T>(ReadOnlySpan<T> text, int from)
        where T : unmanaged, IBinaryInteger<T>
    {
        var lf = text[from..].IndexOf(T.CreateTruncating('\n'));
        return lf < 0 ? text.Length : from + lf + 1;
    }

    private static bool AllAlphabet<T>(ReadOnlySpan<T> line)
        where T : unmanaged, IBinaryInteger<T>
    {
        foreach (var c in line)
        {
            if (!Base64.IsRunChar((char)int.CreateTruncating(c)))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsLastLine<T>(ReadOnlySpan<T> line)
        where T : unmanaged, IBinaryInteger<T>
    {
        var content = line.Length;
        for (var pad = 0; pad < 2 && content > 0 && int.CreateTruncating(line[content - 1]) == '='; pad++)
        {
            content--;
        }

        return content > 0 && AllAlphabet(line[..content]);
    }
}
