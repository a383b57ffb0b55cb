using System.Text;

namespace ProxyGuard.Audit;

/// <summary>
/// Removes query values from a request target before it is recorded: <c>/a?x=1&amp;y=secret</c> becomes
/// <c>/a?x=&amp;y=</c>. Parameters without <c>=</c> are treated as values and removed. A fragment, a scheme
/// and an authority (which may carry user information) are removed; control characters are percent-encoded;
/// the result is at most <see cref="MaxLength"/> characters, ending in <see cref="TruncationMarker"/> when cut.
/// </summary>
public static class PathRedaction
{
    public const int MaxLength = 2048;
    public const string TruncationMarker = "...[truncated]";

    public static string StripQueryValues(string pathAndQuery)
    {
        ArgumentNullException.ThrowIfNull(pathAndQuery);
        if (pathAndQuery.Length <= MaxLength && !NeedsRewrite(pathAndQuery))
        {
            return pathAndQuery;
        }

        var span = pathAndQuery.AsSpan();
        var hash = span.IndexOf('#');
        if (hash >= 0)
        {
            span = span[..hash];
        }

        span = StripSchemeAndAuthority(span);

        var builder = new StringBuilder(Math.Min(span.Length, MaxLength) + 1);
        var question = span.IndexOf('?');
        AppendEscaped(builder, question < 0 ? span : span[..question]);
        if (question >= 0)
        {
            builder.Append('?');
            var query = span[(question + 1)..];
            var first = true;
            while (builder.Length <= MaxLength)
            {
                var amp = query.IndexOf('&');
                var part = amp < 0 ? query : query[..amp];
                if (!first)
                {
                    builder.Append('&');
                }

                first = false;
                var eq = part.IndexOf('=');
                if (eq >= 0)
                {
                    AppendEscaped(builder, part[..eq]);
                    builder.Append('=');
                }

                if (amp < 0)
                {
                    break;
                }

                query = query[(amp + 1)..];
            }
        }

        if (builder.Length > MaxLength)
        {
            var keep = MaxLength - TruncationMarker.Length;
            if (char.IsHighSurrogate(builder[keep - 1]))
            {
                keep--;
            }

            builder.Length = keep;
            builder.Append(TruncationMarker);
        }

        return builder.ToString();
    }

    private static bool NeedsRewrite(string value)
    {
        foreach (var c in value)
        {
            if (c is '?' or '#' || EventText.IsUnsafe(c))
            {
                return true;
            }
        }

        return value.Contains("://", StringComparison.Ordinal);
    }

    private static ReadOnlySpan<char> StripSchemeAndAuthority(ReadOnlySpan<char> span)
    {
        var marker = span.IndexOf("://", StringComparison.Ordinal);
        if (marker <= 0)
        {
            return span;
        }

        foreach (var c in span[..marker])
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '.'))
            {
                return span;
            }
        }

        var rest = span[(marker + 3)..];
        var end = rest.IndexOfAny('/', '?');
        if (end < 0)
        {
            return "/";
        }

        return rest[end..];
    }

    private static void AppendEscaped(StringBuilder builder, ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (builder.Length > MaxLength)
            {
                return;
            }

            if (EventText.IsUnsafe(c))
            {
                // Percent-encode the character's UTF-8 bytes (a C1 control or a bidi override becomes %C2%9B, %E2%80%AE).
                foreach (var b in Encoding.UTF8.GetBytes(c.ToString()))
                {
                    builder.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            else
            {
                builder.Append(c);
            }
        }
    }
}
