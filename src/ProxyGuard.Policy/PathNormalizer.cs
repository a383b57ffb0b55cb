using System.Text;

namespace ProxyGuard.Policy;

/// <summary>
/// Normalises a raw request target path (SPEC 4.2): the query and fragment are dropped; percent-escapes of unreserved
/// characters are decoded; other escapes are kept with upper-case hex; raw non-ASCII and other characters outside the
/// RFC 3986 path set are percent-encoded; <c>.</c> and <c>..</c> segments are resolved. <c>//</c> is NOT collapsed.
/// The path is flagged <see cref="PathNormalization.Ambiguous"/> when servers could read it differently:
/// <c>%2F</c>, <c>%5C</c>, <c>\</c>, NUL or control characters (raw or encoded), double encoding (<c>%25</c> followed
/// by two hex digits), invalid escapes, dot segments spelled with <c>%2E</c>, empty segments (<c>//</c>), <c>..</c>
/// above the root, path parameters (a raw <c>;</c>; also a dot or empty segment with <c>%3B</c> parameters), or a
/// target that does not start with <c>/</c>.
/// </summary>
public static class PathNormalizer
{
    public static PathNormalization Normalize(string rawPath)
    {
        ArgumentNullException.ThrowIfNull(rawPath);
        var end = rawPath.IndexOfAny(['?', '#']);
        var path = end < 0 ? rawPath : rawPath[..end];
        return path.Length > 0 && IsAlreadyNormal(path)
            ? new PathNormalization(path, false) // the common case: nothing to decode, encode or remove
            : NormalizeFull(path);
    }

    /// <summary><see cref="Normalize"/> of a path without query or fragment, without the shortcut for paths already in normal form (tests compare the two).</summary>
    internal static PathNormalization NormalizeFull(string path)
    {
        if (path.Length == 0)
        {
            return new PathNormalization("/", false);
        }

        var ambiguous = path[0] != '/';
        if (ambiguous)
        {
            path = "/" + path;
        }

        // Pass 1: split into segments on raw '/', decoding per segment.
        var segments = new List<(string Text, bool EncodedDot)>();
        var current = new StringBuilder();
        var encodedDot = false;
        var i = 1;
        while (i <= path.Length)
        {
            if (i == path.Length || path[i] == '/')
            {
                segments.Add((current.ToString(), encodedDot));
                current.Clear();
                encodedDot = false;
                i++;
                continue;
            }

            var c = path[i];
            if (c == '%')
            {
                if (i + 2 < path.Length && IsHex(path[i + 1]) && IsHex(path[i + 2]))
                {
                    var b = (HexValue(path[i + 1]) << 4) | HexValue(path[i + 2]);
                    i += 3;
                    if (IsUnreserved((char)b))
                    {
                        current.Append((char)b);
                        if (b == '.')
                        {
                            encodedDot = true;
                        }

                        continue;
                    }

                    if (b is 0x2F or 0x5C or < 0x20 or 0x7F)
                    {
                        ambiguous = true;
                    }
                    else if (b == 0x25 && i + 1 < path.Length && IsHex(path[i]) && IsHex(path[i + 1]))
                    {
                        ambiguous = true;
                    }

                    current.Append('%').Append(HexUpper(b >> 4)).Append(HexUpper(b & 0xF));
                    continue;
                }

                ambiguous = true;
                current.Append("%25");
                i++;
                continue;
            }

            if (c == '\\' || c < 0x20 || c == 0x7F)
            {
                ambiguous = true;
                AppendEncoded(current, c.ToString());
                i++;
                continue;
            }

            if (c > 0x7E)
            {
                var start = i;
                while (i < path.Length && path[i] > 0x7F)
                {
                    i++;
                }

                AppendEncoded(current, path[start..i]);
                continue;
            }

            if (IsPathChar(c))
            {
                // Path parameters: Tomcat, Jetty and older Spring drop ';...' from every segment before matching
                // (/private;x/y is /private/y to them), other servers keep it as part of the name.
                ambiguous |= c == ';';
                current.Append(c);
            }
            else
            {
                AppendEncoded(current, c.ToString());
            }

            i++;
        }

        // Pass 2: remove dot segments (RFC 3986 5.2.4), flag the ambiguous forms.
        var output = new List<string>(segments.Count);
        for (var s = 0; s < segments.Count; s++)
        {
            var (text, dotEncoded) = segments[s];
            var isLast = s == segments.Count - 1;
            if (text is "." or "..")
            {
                if (dotEncoded)
                {
                    ambiguous = true;
                }

                if (text == "..")
                {
                    if (output.Count == 0)
                    {
                        ambiguous = true;
                    }
                    else
                    {
                        output.RemoveAt(output.Count - 1);
                    }
                }

                if (isLast)
                {
                    output.Add(string.Empty);
                }

                continue;
            }

            if ((text.Length == 0 && !isLast) || HasDotOrEmptyNameWithParameters(text))
            {
                ambiguous = true;
            }

            output.Add(text);
        }

        var result = "/" + string.Join('/', output);
        if (!ambiguous && HasDoubleEncoding(result))
        {
            ambiguous = true;
        }

        return new PathNormalization(result, ambiguous);
    }

    /// <summary>An escaped '%' followed by two hex digits in the normalised form (e.g. from <c>%25%32%46</c>) decodes twice.</summary>
    private static bool HasDoubleEncoding(string path)
    {
        var at = path.IndexOf("%25", StringComparison.Ordinal);
        while (at >= 0)
        {
            if (at + 4 < path.Length && IsHex(path[at + 3]) && IsHex(path[at + 4]))
            {
                return true;
            }

            at = path.IndexOf("%25", at + 3, StringComparison.Ordinal);
        }

        return false;
    }

    private static void AppendEncoded(StringBuilder builder, string text)
    {
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            builder.Append('%').Append(HexUpper(b >> 4)).Append(HexUpper(b & 0xF));
        }
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static char HexUpper(int v) => (char)(v < 10 ? '0' + v : 'A' + v - 10);

    private static bool IsUnreserved(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~';

    /// <summary>
    /// True when the steps of <see cref="Normalize"/> would return <paramref name="path"/> unchanged and unambiguous:
    /// it starts with '/', has only characters kept as they are (no '%', no '\\', nothing to encode, no ';'), no empty
    /// segment but a trailing one, and no "." or ".." segment.
    /// </summary>
    private static bool IsAlreadyNormal(string path)
    {
        if (path[0] != '/')
        {
            return false;
        }

        var segmentStart = 1;
        for (var i = 1; i <= path.Length; i++)
        {
            if (i < path.Length && path[i] != '/')
            {
                if (!IsPathChar(path[i]) || path[i] == ';')
                {
                    return false;
                }

                continue;
            }

            var segment = path.AsSpan(segmentStart, i - segmentStart);
            if ((segment.Length == 0 && i < path.Length) || segment is "." or ".." || HasDotOrEmptyNameWithParameters(segment))
            {
                return false;
            }

            segmentStart = i + 1;
        }

        return true;
    }

    /// <summary>
    /// A segment with path parameters (<c>;</c>, raw or <c>%3B</c>) whose name is empty, <c>.</c> or <c>..</c>:
    /// servers that strip parameters before resolving dot segments (Tomcat, Jetty, older Spring) read <c>/a/..;/b</c>
    /// as <c>/b</c> and <c>/a/;/../b</c> as <c>/b</c>, while the proxy keeps <c>..;</c> as an ordinary name.
    /// </summary>
    private static bool HasDotOrEmptyNameWithParameters(ReadOnlySpan<char> segment)
    {
        var semicolon = segment.IndexOf(';');
        var encoded = segment.IndexOf("%3B", StringComparison.OrdinalIgnoreCase);
        var end = semicolon < 0 ? encoded : encoded < 0 ? semicolon : Math.Min(semicolon, encoded);
        return end >= 0 && segment[..end] is "" or "." or "..";
    }

    /// <summary>RFC 3986 pchar minus '%': unreserved / sub-delims / ':' / '@'.</summary>
    private static bool IsPathChar(char c) => IsUnreserved(c) || c is '!' or '$' or '&' or '\'' or '(' or ')' or '*' or '+' or ',' or ';' or '=' or ':' or '@';
}
