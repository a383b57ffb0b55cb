using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// Percent and JSON escapes: every interesting escape gets a window (<see cref="WindowWalk"/>), overlapping windows
/// merge, and each merged window is unescaped once and scanned as the next layer. Windows of one layer are disjoint,
/// so a layer of n characters produces at most n characters of child layers.
/// </summary>
internal sealed partial class ScanSession
{
    /// <summary>
    /// Decodes and scans the windows around interesting escapes. Returns whether the layer holds a line feed (the
    /// same search finds them, so the wrapped-base64 pass is skipped for free on text without line breaks); true
    /// when it did not look.
    /// </summary>
    private bool RunEscapes<T>(ReadOnlySpan<T> text, int depth, LayerMap? map)
        where T : unmanaged, IBinaryInteger<T>
    {
        if (depth >= _maxDepth)
        {
            return true;
        }

        var backslash = T.CreateTruncating('\\');
        var percent = T.CreateTruncating('%');
        var lineFeed = T.CreateTruncating('\n');
        var sawLineFeed = false;
        var i = text.IndexOfAny(backslash, percent, lineFeed);
        var windowStart = -1;
        var windowEnd = -1;
        var walk = default(WindowWalk);
        while (i >= 0 && Error is null)
        {
            int length;
            var interesting = false;
            if (text[i] == lineFeed)
            {
                sawLineFeed = true;
                length = 1;
            }
            else
            {
                interesting = TextUnescaper.IsInterestingEscape(text, i, out length);
            }

            if (interesting)
            {
                Tick(length);
                var (start, end) = walk.Widen(text, i, length, windowStart >= 0 ? windowEnd : 0);
                if (windowStart >= 0 && start <= windowEnd)
                {
                    windowEnd = Math.Max(windowEnd, end);
                }
                else
                {
                    if (windowStart >= 0)
                    {
                        DecodeEscapeWindow(text, windowStart, windowEnd, depth + 1, map);
                    }

                    windowStart = start;
                    windowEnd = end;
                }
            }

            var next = i + length;
            if (next >= text.Length)
            {
                break;
            }

            // Line feeds only matter until the first one.
            var found = sawLineFeed ? text[next..].IndexOfAny(backslash, percent) : text[next..].IndexOfAny(backslash, percent, lineFeed);
            i = found < 0 ? -1 : next + found;
        }

        if (windowStart >= 0)
        {
            DecodeEscapeWindow(text, windowStart, windowEnd, depth + 1, map);
        }

        return sawLineFeed || Error is not null;
    }

    /// <summary>Unescapes [start, end) of a layer (bytes are widened to <c>char</c> first) and scans the result.</summary>
    private void DecodeEscapeWindow<T>(ReadOnlySpan<T> text, int start, int end, int depth, LayerMap? map)
        where T : unmanaged, IBinaryInteger<T>
    {
        if (typeof(T) == typeof(char))
        {
            DecodeWindow(MemoryMarshal.Cast<T, char>(text), start, end, depth, map, json: true, plusAsSpace: false);
            return;
        }

        var window = ScratchArrays<char>.Rent(end - start);
        try
        {
            var count = Encoding.Latin1.GetChars(MemoryMarshal.Cast<T, byte>(text)[start..end], window);
            DecodeSource(window.AsSpan(0, count), start, depth, map, json: true, plusAsSpace: false);
        }
        finally
        {
            ScratchArrays<char>.Return(window);
        }
    }

    private void DecodeWindow(ReadOnlySpan<char> text, int start, int end, int depth, LayerMap? map, bool json, bool plusAsSpace)
    {
        if (Error is not null || depth > _maxDepth)
        {
            return;
        }

        DecodeSource(text[start..end], start, depth, map, json, plusAsSpace);
    }

    /// <summary>Unescapes <paramref name="source"/>, which starts at <paramref name="start"/> of its layer, and scans the result.</summary>
    private void DecodeSource(ReadOnlySpan<char> source, int start, int depth, LayerMap? map, bool json, bool plusAsSpace)
    {
        if (Error is not null || depth > _maxDepth)
        {
            return;
        }

        Tick(source.Length);
        var chars = ScratchArrays<char>.Rent(source.Length);
        var offsets = ScratchArrays<int>.Rent(source.Length + 1);
        try
        {
            var count = TextUnescaper.Unescape(source, chars, offsets, json, plusAsSpace);
            if (!Charge(count))
            {
                return;
            }

            ScanLayer(chars.AsSpan(0, count), depth, LayerMap.Offsets(map, offsets, start));
        }
        finally
        {
            ScratchArrays<char>.Return(chars);
            ScratchArrays<int>.Return(offsets);
        }
    }
}
