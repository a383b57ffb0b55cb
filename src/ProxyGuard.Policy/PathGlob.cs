namespace ProxyGuard.Policy;

/// <summary>
/// A compiled path glob, matched segment by segment on a normalised path: <c>*</c> matches within one segment
/// (never <c>/</c>), a whole-segment <c>**</c> matches any number of segments (including zero); everything else is
/// literal and case-sensitive.
/// </summary>
internal sealed class PathGlob
{
    private readonly string[] _segments;

    private PathGlob(string pattern, string[] segments)
    {
        Pattern = pattern;
        _segments = segments;
    }

    public string Pattern { get; }

    /// <summary>
    /// A valid glob that reads like a regular expression (<c>.*</c>, <c>.+</c>, <c>|</c>, a trailing <c>$</c>): it is
    /// matched literally, which is rarely what was meant. Returns the warning text, or null.
    /// </summary>
    public static string? RegexLookalikeWarning(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var looksLikeRegex = pattern.Contains(".*", StringComparison.Ordinal) || pattern.Contains(".+", StringComparison.Ordinal)
            || pattern.Contains('|', StringComparison.Ordinal) || pattern.EndsWith('$');
        if (!looksLikeRegex)
        {
            return null;
        }

        var trimmed = pattern.TrimEnd('$');
        var suggestion = trimmed.EndsWith("/.*", StringComparison.Ordinal) || trimmed.EndsWith("/.+", StringComparison.Ordinal)
            ? $"; did you mean '{trimmed[..^2]}**'?"
            : string.Empty;
        return $"path glob '{pattern}' looks like a regular expression but is matched literally (globs take '*' within one segment and '**' for any depth){suggestion}";
    }

    private const string NotRegex = "paths are globs, not regular expressions: '*' within a segment, '**' for any depth";

    /// <summary>
    /// For a glob written as a regular expression, the glob that was probably meant: anchors dropped, a trailing
    /// <c>.*</c> or <c>.+</c> segment as <c>**</c>, any other segment with regex syntax as <c>*</c>.
    /// </summary>
    private static string Suggest(string pattern)
    {
        var text = pattern.TrimStart('^').TrimEnd('$');
        if (text.Length == 0 || text[0] != '/')
        {
            return string.Empty;
        }

        var segments = text[1..].Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (segment is ".*" or ".+" && i == segments.Length - 1)
            {
                segments[i] = "**";
            }
            else if (segment.IndexOfAny(['\\', '(', ')', '|', '+', '[', ']', '{', '}', '^', '$']) >= 0 || segment.Contains(".*", StringComparison.Ordinal))
            {
                segments[i] = "*";
            }
        }

        var suggestion = "/" + string.Join('/', segments);
        return suggestion == pattern ? string.Empty : $"; did you mean '{suggestion}'?";
    }

    public static bool TryCompile(string pattern, out PathGlob? glob, out string? error)
    {
        glob = null;
        error = null;
        if (pattern.Length == 0 || pattern[0] != '/')
        {
            error = pattern.StartsWith('^')
                ? $"path glob '{pattern}' must start with '/' ({NotRegex}){Suggest(pattern)}"
                : $"path glob '{pattern}' must start with '/'";
            return false;
        }

        if (pattern.Contains('\\', StringComparison.Ordinal))
        {
            // '\d', '\.', '\w': regular-expression escapes, not glob syntax (and a '\' in a path is ambiguous anyway).
            error = $"path glob '{pattern}' contains '\\', which is not glob syntax ({NotRegex}){Suggest(pattern)}";
            return false;
        }

        if (pattern.Contains('?', StringComparison.Ordinal) || pattern.Contains('#', StringComparison.Ordinal))
        {
            error = $"path glob '{pattern}' must not contain '?' or '#' (paths are matched without the query)";
            return false;
        }

        if (pattern.Contains('[', StringComparison.Ordinal) || pattern.Contains('{', StringComparison.Ordinal))
        {
            error = $"path glob '{pattern}': only '*' and '**' are supported ('[' and '{{' are not glob syntax here)";
            return false;
        }

        var normalized = PathNormalizer.Normalize(pattern);
        if (normalized.Ambiguous)
        {
            error = $"path glob '{pattern}' is ambiguous (encoded '/', '\\', dot segments, '//', control characters or invalid escapes)";
            return false;
        }

        var segments = normalized.Path[1..].Split('/');
        foreach (var segment in segments)
        {
            if (segment.Contains("**", StringComparison.Ordinal) && segment != "**")
            {
                error = $"path glob '{pattern}': '**' must be a whole segment";
                return false;
            }
        }

        glob = new PathGlob(pattern, segments);
        return true;
    }

    /// <summary>Matches a normalised, non-ambiguous path.</summary>
    public bool IsMatch(string normalizedPath)
    {
        if (normalizedPath.Length == 0 || normalizedPath[0] != '/')
        {
            return false;
        }

        var path = normalizedPath[1..].Split('/');
        // memo[p, s]: 0 unknown, 1 match, 2 no match
        var memo = new byte[(_segments.Length + 1) * (path.Length + 1)];
        return Match(0, 0, path, memo);
    }

    private bool Match(int p, int s, string[] path, byte[] memo)
    {
        var key = (p * (path.Length + 1)) + s;
        if (memo[key] != 0)
        {
            return memo[key] == 1;
        }

        bool result;
        if (p == _segments.Length)
        {
            result = s == path.Length;
        }
        else if (_segments[p] == "**")
        {
            // zero segments, or consume one and stay on '**'
            result = Match(p + 1, s, path, memo) || (s < path.Length && Match(p, s + 1, path, memo));
        }
        else
        {
            result = s < path.Length && SegmentMatches(_segments[p], path[s]) && Match(p + 1, s + 1, path, memo);
        }

        memo[key] = result ? (byte)1 : (byte)2;
        return result;
    }

    /// <summary>Wildcard match of one segment ('*' = any run of characters), linear two-pointer algorithm.</summary>
    internal static bool SegmentMatches(string pattern, string text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] != '*' && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }
}
