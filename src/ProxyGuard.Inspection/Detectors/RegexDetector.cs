using System.Text.RegularExpressions;

namespace ProxyGuard.Inspection.Detectors;

internal delegate bool MatchValidator(ReadOnlySpan<char> match);

/// <summary>
/// A detector confirmed by a regular expression run on a small window around the anchor. Anchored patterns start
/// with <c>\G</c> and are run from the anchor position; context patterns search the whole window.
/// </summary>
internal sealed class RegexDetector : Detector
{
    private const RegexOptions BaseOptions = RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture | RegexOptions.Compiled;

    private readonly Regex _regex;
    private readonly Lazy<Regex> _regexIgnoreCase;
    private readonly int _back;
    private readonly int _forward;
    private readonly bool _anchored;
    private readonly MatchValidator? _validator;
    private readonly int _maxMatch;

    public RegexDetector(
        string id,
        string description,
        string pattern,
        string[] anchors,
        string[]? keywords = null,
        int back = 8,
        int forward = 320,
        MatchValidator? validator = null,
        int maxMatch = 0)
        : base(id, description, anchors, keywords ?? [])
    {
        _maxMatch = maxMatch;
        _anchored = pattern.StartsWith(@"\G", StringComparison.Ordinal);
        _regex = new Regex(pattern, BaseOptions);
        _regexIgnoreCase = new Lazy<Regex>(() => new Regex(pattern, BaseOptions | RegexOptions.IgnoreCase));
        _back = back;
        _forward = forward;
        _validator = validator;
    }

    /// <summary>A context pattern whose matches are at most <c>maxMatch</c> long remembers the searched region per pass.</summary>
    public override bool UsesMemo => _maxMatch > 0 && !_anchored;

    /// <summary>
    /// For a context pattern with a known longest match: hits come in increasing order and their windows overlap, so
    /// only the part of this window past the region already searched (less one longest match) is searched again.
    /// The regex runs on the text up to the window end with a start position, so its look-behind sees the real
    /// preceding character (the plain path cuts the window there). n dense hits cost O(n), not O(n x window).
    /// </summary>
    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, DetectorMemo memo, out int start, out int length)
    {
        if (!UsesMemo)
        {
            return TryMatch(text, hit, anchorLength, ignoreCase, out start, out length);
        }

        var windowStart = Math.Max(0, hit - _back);
        var windowEnd = (int)Math.Min(text.Length, (long)hit + anchorLength + _forward);
        var continues = memo.Valid && windowStart >= memo.From && windowStart <= memo.To;
        var startAt = continues ? Math.Max(windowStart, memo.To - _maxMatch) : windowStart;
        var regex = ignoreCase ? _regexIgnoreCase.Value : _regex;
        var searched = text[..windowEnd];
        foreach (var match in regex.EnumerateMatches(searched, Math.Min(startAt, windowEnd)))
        {
            if (match.Length == 0)
            {
                continue;
            }

            if (_validator is null || _validator(searched.Slice(match.Index, match.Length)))
            {
                start = match.Index;
                length = match.Length;
                return true;
            }
        }

        memo.From = continues ? memo.From : windowStart;
        memo.To = Math.Max(windowEnd, continues ? memo.To : 0);
        memo.Valid = true;
        start = 0;
        length = 0;
        return false;
    }

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length)
    {
        var windowStart = Math.Max(0, hit - _back);
        var windowEnd = (int)Math.Min(text.Length, (long)hit + anchorLength + _forward);
        var window = text[windowStart..windowEnd];
        var regex = ignoreCase ? _regexIgnoreCase.Value : _regex;
        var startAt = _anchored ? hit - windowStart : 0;
        foreach (var match in regex.EnumerateMatches(window, startAt))
        {
            if (match.Length == 0)
            {
                continue;
            }

            if (_validator is null || _validator(window.Slice(match.Index, match.Length)))
            {
                start = windowStart + match.Index;
                length = match.Length;
                return true;
            }
        }

        start = 0;
        length = 0;
        return false;
    }
}
