using System.Buffers;

namespace ProxyGuard.Inspection.Detectors;

/// <summary>
/// <c>jwt</c>: three base64url parts separated by dots (<c>eyJ…={0,2}.…={0,2}.…</c>, first part at least 13
/// characters, second at least 4, all within 16 KiB of the <c>eyJ</c>) whose first part decodes to a JSON object with
/// <c>"alg"</c>. The same language as the regex <c>\GeyJ[A-Za-z0-9_-]{10,}={0,2}\.[A-Za-z0-9_-]{4,}={0,2}\.[A-Za-z0-9_-]*</c>
/// it replaces, confirmed without it: every <c>eyJ</c> inside one run of base64url characters shares the run's end
/// and what follows, so the structure is worked out once per run (memo) and each hit costs O(1) plus decoding its
/// header (at most ~1 KiB). The regex walked up to 16 KiB per hit, so a run of <c>eyJeyJ…</c> was quadratic.
/// </summary>
internal sealed class JwtDetector : Detector
{
    private const int Forward = 16384;
    private const int MinFirst = 10;
    private const int MinSecond = 4;

    private static readonly SearchValues<char> _part =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");

    public JwtDetector()
        : base(
            "jwt",
            "JSON Web Token: three base64url parts separated by dots whose first part decodes to a JSON object with \"alg\".",
            ["eyJ"],
            [])
    {
    }

    public override bool UsesMemo => true;

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length) =>
        TryMatch(text, hit, anchorLength, ignoreCase, new DetectorMemo(), out start, out length);

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, DetectorMemo memo, out int start, out int length)
    {
        start = hit;
        length = 0;
        if (hit < 0 || hit + 3 > text.Length || !text.Slice(hit, 3).Equals("eyJ", ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
        {
            return false;
        }

        // memo: [From, To) is the run of base64url characters the first part lies in; A = the first dot (-1: no JWT
        // structure after this run), B = the second dot, C = the end of the third part.
        var first = hit + 3;
        if (!memo.Valid || first < memo.From || first > memo.To)
        {
            Structure(text, first, memo);
        }

        if (memo.A < 0 || memo.To - first < MinFirst)
        {
            return false;
        }

        var windowEnd = (int)Math.Min(text.Length, (long)hit + anchorLength + Forward);
        if (memo.B >= windowEnd)
        {
            return false;
        }

        if (!Validators.JwtHeaderPart(text[hit..memo.A]))
        {
            return false;
        }

        length = Math.Min(memo.C, windowEnd) - hit;
        return true;
    }

    private static void Structure(ReadOnlySpan<char> text, int first, DetectorMemo memo)
    {
        memo.Valid = true;
        memo.From = first;
        memo.To = RunEnd(text, first);
        memo.A = memo.B = memo.C = -1;
        var dot = Dot(text, memo.To);
        if (dot < 0)
        {
            return;
        }

        var secondEnd = RunEnd(text, dot + 1);
        if (secondEnd - (dot + 1) < MinSecond)
        {
            return;
        }

        var second = Dot(text, secondEnd);
        if (second < 0)
        {
            return;
        }

        memo.A = dot;
        memo.B = second;
        memo.C = RunEnd(text, second + 1);
    }

    /// <summary>The position of <c>.</c> after at most two <c>=</c> from <paramref name="at"/>, or -1.</summary>
    private static int Dot(ReadOnlySpan<char> text, int at)
    {
        for (var pad = 0; pad < 2 && at < text.Length && text[at] == '='; pad++)
        {
            at++;
        }

        return at < text.Length && text[at] == '.' ? at : -1;
    }

    private static int RunEnd(ReadOnlySpan<char> text, int from)
    {
        if (from >= text.Length)
        {
            return text.Length;
        }

        var end = text[from..].IndexOfAnyExcept(_part);
        return end < 0 ? text.Length : from + end;
    }
}
