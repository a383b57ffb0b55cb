using System.Numerics;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// Widens the window around each interesting escape of one layer: <see cref="EscapeWindow"/> characters on each side,
/// then over adjacent token characters (at most <see cref="MaxWindowExtension"/> more each way). Escapes come in
/// increasing order, so the walks are remembered: the backward walk never goes below the end of the window already
/// built (reaching it merges the two anyway), and the forward walk resumes where the last one stopped. Every
/// character is walked over at most once in each direction, so widening all escapes of an n-character layer costs
/// O(n); the naive walk was O(n x 64 KiB).
/// </summary>
internal struct WindowWalk
{
    /// <summary>Characters decoded on each side of an interesting escape.</summary>
    public const int EscapeWindow = 192;

    /// <summary>How far a window may grow past <see cref="EscapeWindow"/> over token characters, each way.</summary>
    public const int MaxWindowExtension = 64 * 1024;

    private int _end;
    private bool _hard;

    /// <summary>The window of the escape at <paramref name="escape"/> (<paramref name="length"/> long), as [Start, End).</summary>
    /// <param name="floor">The end of the window built so far (0 for none): the backward walk stops there.</param>
    public (int Start, int End) Widen<T>(ReadOnlySpan<T> text, int escape, int length, int floor)
        where T : unmanaged, IBinaryInteger<T>
    {
        var start = Math.Max(0, escape - EscapeWindow);
        var lowest = Math.Max(floor, start - MaxWindowExtension);
        while (start > lowest && TextUnescaper.IsWindowChar(int.CreateTruncating(text[start - 1])))
        {
            start--;
        }

        var end = Math.Min(text.Length, escape + length + EscapeWindow);
        var ceiling = Math.Min(text.Length, end + MaxWindowExtension);

        // [previous walk's start, _end) is all window characters and the walks start in increasing order: when this
        // one starts inside it, it runs to _end (and stops there if the last one stopped on a non-window character).
        if (end <= _end)
        {
            if (_hard)
            {
                return (start, _end);
            }

            end = _end;
        }

        while (end < ceiling && TextUnescaper.IsWindowChar(int.CreateTruncating(text[end])))
        {
            end++;
        }

        _end = end;
        _hard = end < ceiling;
        return (start, end);
    }
}
