using System.Text;

namespace ProxyGuard.Inspection.Tests;

/// <summary>Loads Corpus/detectors.txt and expands its templates with seeded random characters.</summary>
internal static class Corpus
{
    private const string Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private const string Lower = "abcdefghijklmnopqrstuvwxyz";
    private const string Digits = "0123456789";

    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Corpus");

    public static IReadOnlyList<(string Detector, bool Positive, string Template)> Entries { get; } = Load();

    public static IEnumerable<object[]> Positives() =>
        Entries.Where(e => e.Positive).Select((e, i) => new object[] { e.Detector, e.Template, i });

    public static IEnumerable<object[]> Negatives() =>
        Entries.Where(e => !e.Positive).Select((e, i) => new object[] { e.Detector, e.Template, i });

    public static IEnumerable<object[]> BenignFiles() =>
        Directory.GetFiles(Path.Combine(Dir, "benign")).Select(f => new object[] { Path.GetFileName(f) });

    /// <summary>Expands a template; the same seed gives the same value.</summary>
    public static string Expand(string template, int seed)
    {
        var random = new Random(seed);
        var builder = new StringBuilder();
        var i = 0;
        while (i < template.Length)
        {
            var open = template.IndexOf('{', i);
            var close = open < 0 ? -1 : template.IndexOf('}', open);
            var token = close < 0 ? string.Empty : template[(open + 1)..close];
            if (open < 0 || !(token == "uuid" || (token.Length > 2 && token[1] == ':' && int.TryParse(token.AsSpan(2), out _))))
            {
                if (open < 0)
                {
                    builder.Append(template, i, template.Length - i);
                    break;
                }

                builder.Append(template, i, open - i + 1);
                i = open + 1;
                continue;
            }

            builder.Append(template, i, open - i);
            builder.Append(token == "uuid" ? new Guid(Bytes(random, 16)).ToString() : Generate(random, token[0], int.Parse(token.AsSpan(2))));
            i = close + 1;
        }

        return builder.ToString();
    }

    public static string Generate(Random random, char kind, int length)
    {
        var alphabet = kind switch
        {
            'U' => Upper + Digits,
            'A' => Upper + Lower + Digits,
            'l' => Lower,
            'h' => Digits + "abcdef",
            'd' => Digits,
            'b' => Upper + Lower + Digits + "+/",
            'u' => Upper + Lower + Digits + "_-",
            'c' => "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
            _ => throw new ArgumentException($"unknown template class {kind}"),
        };
        var chars = new char[length];
        for (var k = 0; k < length; k++)
        {
            chars[k] = alphabet[random.Next(alphabet.Length)];
        }

        // Mixed classes really are mixed (a random 40-char base64 string always is in practice).
        if (kind is 'A' or 'b' or 'u' && length >= 3)
        {
            chars[0] = Upper[random.Next(26)];
            chars[1] = Lower[random.Next(26)];
            chars[2] = Digits[random.Next(10)];
        }

        return new string(chars);
    }

    private static byte[] Bytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    private static List<(string, bool, string)> Load()
    {
        var list = new List<(string, bool, string)>();
        foreach (var line in File.ReadAllLines(Path.Combine(Dir, "detectors.txt")))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var parts = line.Split(" | ", 3);
            list.Add((parts[0].Trim(), parts[1].Trim() == "+", parts[2]));
        }

        return list;
    }
}
