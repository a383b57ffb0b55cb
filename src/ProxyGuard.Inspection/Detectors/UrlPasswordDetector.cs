using System.Buffers;

namespace ProxyGuard.Inspection.Detectors;

/// <summary>
/// <c>scheme://user:password@host</c>. Triggered by every <c>@</c> (a single-character scan is cheaper than
/// anchoring on <c>://</c>, which every URL contains); the verifier walks back over the user-info.
/// </summary>
internal sealed class UrlPasswordDetector : Detector
{
    private const int MaxUserInfo = 512;

    public UrlPasswordDetector()
        : base("url-password", "A URL with an embedded password: scheme://user:password@host.", [], [])
    {
    }

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length)
    {
        start = 0;
        length = 0;
        if (hit + 1 >= text.Length || !IsHostChar(text[hit + 1]))
        {
            return false;
        }

        var u = hit;
        var colon = -1;
        var limit = Math.Max(0, hit - MaxUserInfo);
        while (u > limit)
        {
            var c = text[u - 1];
            if (IsStop(c))
            {
                break;
            }

            if (c == ':')
            {
                colon = u - 1;
            }

            u--;
        }

        // u is the first user-info char; need "scheme://" right before it.
        if (colon < 0 || u < 4 || text[u - 1] != '/' || text[u - 2] != '/' || text[u - 3] != ':' || !char.IsAsciiLetterOrDigit(text[u - 4]))
        {
            return false;
        }

        var password = text[(colon + 1)..hit];
        if (password.IsEmpty || !password.ContainsAnyExcept('*'))
        {
            return false;
        }

        start = colon + 1;
        length = password.Length;
        return true;
    }

    /// <summary>
    /// The same test on bytes read as Latin-1 (byte i is char i), so a body is checked at each <c>@</c> without
    /// widening it to <c>char</c>.
    /// </summary>
    public static bool MatchesAt(ReadOnlySpan<byte> text, int hit)
    {
        if (hit + 1 >= text.Length || !IsHostChar((char)text[hit + 1]))
        {
            return false;
        }

        // The user info runs back from the '@' to the last stop character (at most MaxUserInfo bytes); its first ':'
        // starts the password. The same as the char version's backward walk, with vectorised searches.
        var limit = Math.Max(0, hit - MaxUserInfo);
        var stop = text[limit..hit].LastIndexOfAny(_stopBytes);
        var u = stop < 0 ? limit : limit + stop + 1;
        var first = text[u..hit].IndexOf((byte)':');
        var colon = first < 0 ? -1 : u + first;
        if (colon < 0 || u < 4 || text[u - 1] != '/' || text[u - 2] != '/' || text[u - 3] != ':' || !char.IsAsciiLetterOrDigit((char)text[u - 4]))
        {
            return false;
        }

        var password = text[(colon + 1)..hit];
        return !password.IsEmpty && password.ContainsAnyExcept((byte)'*');
    }

    // IsStop's characters as bytes (derived from it, so the two paths cannot drift apart).
    private static readonly SearchValues<byte> _stopBytes =
        SearchValues.Create([.. Enumerable.Range(0, 256).Where(b => IsStop((char)b)).Select(b => (byte)b)]);

    private static bool IsHostChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '[' || c == '-' || c == '_' || c >= 0x80;

    private static bool IsStop(char c) => c switch
    {
        '/' or '@' or '?' or '#' or '"' or '\'' or '<' or '>' or '\\' or '(' or ')' or ',' or ';' or '[' or ']' or '{' or '}' or '|' or '^' or '`' => true,
        _ => c <= ' ',
    };
}
