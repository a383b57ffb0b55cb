using System.Text.RegularExpressions;

namespace ProxyGuard.Policy.Lifecycle;

/// <summary>
/// Turns observed (normalised) paths into path globs: a segment that is an id (all digits), a UUID, a hex hash
/// (at least 7 hex digits with a digit and a letter, or 16+ hex digits) becomes <c>*</c>; a version number inside a
/// segment (<c>1.2</c>, <c>v2.32.0</c>, <c>1.0.0-rc1</c>) becomes <c>*</c> in place
/// (<c>requests-2.32.0-py3-none-any.whl</c> → <c>requests-*-py3-none-any.whl</c>). Globs that still differ only in
/// their last segment are merged into <c>PREFIX/*</c> when there are more than <see cref="MaxSiblings"/> of them.
/// </summary>
internal static partial class PathGeneralizer
{
    /// <summary>More distinct last segments than this under one prefix become one <c>*</c>.</summary>
    public const int MaxSiblings = 8;

    /// <summary>More globs than this for one rule are folded into <c>/FIRST/**</c> prefixes.</summary>
    public const int MaxGlobs = 24;

    public static string Generalize(string normalizedPath)
    {
        if (normalizedPath == "/")
        {
            return "/";
        }

        var segments = normalizedPath[1..].Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            segments[i] = Segment(segments[i]);
        }

        return "/" + string.Join('/', segments);
    }

    internal static string Segment(string segment)
    {
        if (segment.Length == 0)
        {
            return segment;
        }

        // Glob syntax the policy refuses, or a literal '*': the whole segment becomes '*'.
        if (segment.AsSpan().IndexOfAny("*[]{}?#") >= 0)
        {
            return "*";
        }

        if (segment.All(char.IsAsciiDigit) || Uuid().IsMatch(segment) || IsHash(segment))
        {
            return "*";
        }

        var replaced = Version().Replace(segment, "*");
        return replaced;
    }

    private static bool IsHash(string s)
    {
        if (s.Length < 7 || !s.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        return s.Length >= 16 || (s.Any(char.IsAsciiDigit) && s.Any(char.IsAsciiLetter));
    }

    /// <summary>Merges globs: siblings beyond <see cref="MaxSiblings"/> become <c>PREFIX/*</c>, too many globs fold into prefixes.</summary>
    public static IReadOnlyList<string> Merge(IEnumerable<string> globs)
    {
        var set = new SortedSet<string>(globs, StringComparer.Ordinal);
        var byParent = set.Where(g => g != "/").GroupBy(Parent).Where(g => g.Count() > MaxSiblings).ToList();
        foreach (var group in byParent)
        {
            foreach (var g in group)
            {
                set.Remove(g);
            }

            set.Add(group.Key.Parent + "*" + (group.Key.Slash ? "/" : string.Empty));
        }

        if (set.Count > MaxGlobs)
        {
            // Fold into the first segment: /a/b/c -> /a/**. The root stays as it is.
            set = new SortedSet<string>(set.Select(g => g.Count(c => c == '/') <= 1 ? g : "/" + g[1..].Split('/')[0] + "/**"), StringComparer.Ordinal);
        }

        // A glob covered by a '/**' glob of the same list is dropped.
        var deep = set.Where(g => g.EndsWith("/**", StringComparison.Ordinal)).Select(g => g[..^2]).ToList();
        return set.Where(g => !deep.Any(d => g.StartsWith(d, StringComparison.Ordinal) && g != d + "**")).ToList();
    }

    /// <summary>The glob without its last segment (a trailing '/' belongs to the last segment: <c>/simple/x/</c> → <c>/simple/</c>).</summary>
    private static (string Parent, bool Slash) Parent(string glob)
    {
        var slash = glob.Length > 1 && glob.EndsWith('/');
        var body = slash ? glob[..^1] : glob;
        return (body[..(body.LastIndexOf('/') + 1)], slash);
    }

    [GeneratedRegex(@"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\z")]
    private static partial Regex Uuid();

    // A version: optional 'v', two or more dot-separated numbers, an optional pre-release/build tail (-rc1, .post1, +local).
    [GeneratedRegex(@"(?<![A-Za-z0-9])v?\d+(\.\d+)+([-.+]?(a|b|rc|alpha|beta|pre|post|dev)\.?\d*)?(?![0-9])", RegexOptions.IgnoreCase)]
    private static partial Regex Version();
}
