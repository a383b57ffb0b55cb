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

    public RegexDetector(
        string id,
        string description,
        string pattern,
        string[] anchors,
        string[]? keywords = null,
        int back = 8,
        int forward = 320,
        MatchValidator? validator = null)
        : base(id, description, anchors, keywords ?? [])
    {
        _anchored = pattern.StartsWith(@"\G", StringComparison.Ordinal);
        _regex = new Regex(pattern, BaseOptions);
        _regexIgnoreCase = new Lazy<Regex>(() => new Regex(pattern, BaseOptions | RegexOptions.IgnoreCase));
        _back = back;
        _forward = forward;
        _validator = validator;
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
