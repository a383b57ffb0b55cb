using System.Globalization;
using System.Text;

namespace ProxyGuard.Audit;

/// <summary>
/// The one sanitiser for sandbox-shaped text on its way into an event, a log line or a terminal table: C0 and C1
/// control characters, DEL, line and paragraph separators and bidirectional overrides are written as <c>\xNN</c> /
/// <c>\uNNNN</c>, so no escape sequence reaches a terminal and no line can be forged. Linear; returns the same
/// string when nothing needs escaping.
/// </summary>
public static class EventText
{
    public static string? Clean(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var first = IndexOfUnsafe(text);
        if (first < 0)
        {
            return text;
        }

        var builder = new StringBuilder(text.Length + 8).Append(text, 0, first);
        for (var i = first; i < text.Length; i++)
        {
            var c = text[i];
            if (!IsUnsafe(c))
            {
                builder.Append(c);
            }
            else if (c <= '\u00ff')
            {
                builder.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    public static bool IsUnsafe(char c) =>
        c < ' ' || c is >= '\u007f' and <= '\u009f' || c is '\u2028' or '\u2029' || c is >= '\u202a' and <= '\u202e'
        || c is >= '\u2066' and <= '\u2069' || c is '\u200e' or '\u200f' || c == '\ufeff';

    private static int IndexOfUnsafe(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (IsUnsafe(text[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
