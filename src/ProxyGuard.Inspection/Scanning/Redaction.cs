using System.Text;

namespace ProxyGuard.Inspection.Scanning;

internal readonly record struct Redaction(int Start, int End, string Rule);

internal static class Redactor
{
    public static string Apply(string text, List<Redaction> redactions)
    {
        var builder = new StringBuilder(text.Length);
        var position = 0;
        foreach (var (start, end, rule) in Merge(redactions))
        {
            builder.Append(text, position, start - position);
            builder.Append("[REDACTED:").Append(rule).Append(']');
            position = end;
        }

        builder.Append(text, position, text.Length - position);
        return builder.ToString();
    }

    public static byte[] Apply(ReadOnlySpan<byte> body, List<Redaction> redactions)
    {
        using var output = new MemoryStream(body.Length);
        var position = 0;
        foreach (var (start, end, rule) in Merge(redactions))
        {
            output.Write(body[position..start]);
            output.Write(Encoding.UTF8.GetBytes($"[REDACTED:{rule}]"));
            position = end;
        }

        output.Write(body[position..]);
        return output.ToArray();
    }

    private static List<Redaction> Merge(List<Redaction> redactions)
    {
        redactions.Sort((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : b.End.CompareTo(a.End));
        var merged = new List<Redaction>(redactions.Count);
        foreach (var r in redactions)
        {
            if (merged.Count > 0 && r.Start < merged[^1].End)
            {
                var last = merged[^1];
                merged[^1] = last with { End = Math.Max(last.End, r.End) };
                continue;
            }

            merged.Add(r);
        }

        return merged;
    }
}
