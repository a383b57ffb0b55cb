using System.Text;

namespace ProxyGuard.Policy;

/// <summary>One problem found while loading a policy (or a cases file). Line and column are 1-based.</summary>
public sealed record PolicyDiagnostic(string File, int Line, int Column, string Message)
{
    /// <summary>Longest message kept: a diagnostic that quotes a huge value from the file is cut, never amplified.</summary>
    public const int MaxMessageLength = 400;

    /// <summary>The message, at most <see cref="MaxMessageLength"/> characters.</summary>
    public string Message { get; init; } = Message.Length <= MaxMessageLength
        ? Message
        : Message[..MaxMessageLength] + $"... ({Message.Length - MaxMessageLength} more characters)";

    /// <summary><c>FILE:LINE:COL: message</c> on one line: control characters quoted from the file are shown escaped.</summary>
    public override string ToString() => $"{File}:{Line}:{Column}: {Escape(Message)}";

    private static string Escape(string text)
    {
        if (!text.Any(char.IsControl))
        {
            return text;
        }

        var sb = new StringBuilder(text.Length + 8);
        foreach (var ch in text)
        {
            sb.Append(ch switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(ch) => $"\\u{(int)ch:x4}",
                _ => ch.ToString(),
            });
        }

        return sb.ToString();
    }
}
