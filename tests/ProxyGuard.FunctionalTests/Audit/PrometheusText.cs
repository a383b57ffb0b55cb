using System.Globalization;
using System.Text;

namespace ProxyGuard.FunctionalTests.Audit;

public sealed record PromSample(string Name, string Family, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// A strict parser of the Prometheus text exposition format 0.0.4: <c># HELP</c> and <c># TYPE</c>
/// lines (each at most once per family, before its samples), sample lines
/// <c>name{label="value",...} value [timestamp]</c> with only the escapes the format defines, every
/// sample belonging to a declared family, no duplicate series, and consistent histograms.
/// Anything else throws <see cref="FormatException"/> naming the line.
/// </summary>
public sealed class PrometheusText
{
    private static readonly HashSet<string> KnownTypes = ["counter", "gauge", "histogram", "summary", "untyped"];

    public Dictionary<string, string> Types { get; } = [];

    public Dictionary<string, string> Help { get; } = [];

    public List<PromSample> Samples { get; } = [];

    public static PrometheusText Parse(string text)
    {
        var result = new PrometheusText();
        if (text.Length == 0 || text[^1] != '\n')
        {
            throw new FormatException("the exposition must end with a line feed");
        }

        if (text.Contains('\r', StringComparison.Ordinal))
        {
            throw new FormatException("carriage returns are not allowed");
        }

        var seenSeries = new HashSet<string>();
        var familiesWithSamples = new HashSet<string>();
        var lines = text[..^1].Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n];
            var where = $"line {n + 1} '{line}'";
            if (line.Length == 0)
            {
                continue;
            }

            if (line[0] == '#')
            {
                var parts = line.Split(' ', 4);
                if (parts.Length >= 3 && parts[0] == "#" && parts[1] is "HELP" or "TYPE")
                {
                    var name = parts[2];
                    RequireMetricName(name, where);
                    if (familiesWithSamples.Contains(name))
                    {
                        throw new FormatException($"{where}: {parts[1]} after samples of the family");
                    }

                    if (parts[1] == "HELP")
                    {
                        if (!result.Help.TryAdd(name, parts.Length == 4 ? UnescapeHelp(parts[3], where) : string.Empty))
                        {
                            throw new FormatException($"{where}: second HELP for {name}");
                        }
                    }
                    else
                    {
                        if (parts.Length != 4 || !KnownTypes.Contains(parts[3]))
                        {
                            throw new FormatException($"{where}: bad TYPE");
                        }

                        if (!result.Types.TryAdd(name, parts[3]))
                        {
                            throw new FormatException($"{where}: second TYPE for {name}");
                        }
                    }
                }

                continue; // other comments are allowed by the format
            }

            var sample = ParseSample(line, where, result.Types);
            familiesWithSamples.Add(sample.Family);
            var key = sample.Name + "{" + string.Join(",", sample.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => l.Key + "=" + l.Value)) + "}";
            if (!seenSeries.Add(key))
            {
                throw new FormatException($"{where}: duplicate series {key}");
            }

            result.Samples.Add(sample);
        }

        result.CheckHistograms();
        return result;
    }

    /// <summary>The value of the series with exactly these labels, or null when absent.</summary>
    public double? Find(string name, params (string Name, string Value)[] labels) =>
        Samples.FirstOrDefault(s => s.Name == name && s.Labels.Count == labels.Length
                                    && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value))?.Value;

    public double Value(string name, params (string Name, string Value)[] labels) =>
        Find(name, labels) ?? throw new KeyNotFoundException($"no series {name} {string.Join(",", labels.Select(l => l.Name + "=" + l.Value))}");

    /// <summary>The sum of every series of <paramref name="name"/> that has at least these label values (others free).</summary>
    public double Total(string name, params (string Name, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value)).Sum(s => s.Value);

    public double Sum(string name) => Samples.Where(s => s.Name == name).Sum(s => s.Value);

    public IEnumerable<PromSample> Series(string name) => Samples.Where(s => s.Name == name);

    private static PromSample ParseSample(string line, string where, Dictionary<string, string> types)
    {
        var i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ')
        {
            i++;
        }

        var name = line[..i];
        RequireMetricName(name, where);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                if (i >= line.Length)
                {
                    throw new FormatException($"{where}: unterminated label set");
                }

                if (line[i] == '}')
                {
                    i++;
                    break;
                }

                var start = i;
                while (i < line.Length && line[i] != '=')
                {
                    i++;
                }

                var labelName = line[start..i];
                if (!IsLabelName(labelName))
                {
                    throw new FormatException($"{where}: bad label name '{labelName}'");
                }

                if (i + 1 >= line.Length || line[i + 1] != '"')
                {
                    throw new FormatException($"{where}: label value must be quoted");
                }

                i += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length)
                    {
                        throw new FormatException($"{where}: unterminated label value");
                    }

                    var c = line[i++];
                    if (c == '"')
                    {
                        break;
                    }

                    if (c == '\\')
                    {
                        if (i >= line.Length)
                        {
                            throw new FormatException($"{where}: dangling escape");
                        }

                        var e = line[i++];
                        value.Append(e switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw new FormatException($"{where}: unknown escape \\{e}"),
                        });
                        continue;
                    }

                    value.Append(c);
                }

                if (!labels.TryAdd(labelName, value.ToString()))
                {
                    throw new FormatException($"{where}: label {labelName} twice");
                }

                if (i < line.Length && line[i] == ',')
                {
                    i++;
                }
                else if (i >= line.Length || line[i] != '}')
                {
                    throw new FormatException($"{where}: expected ',' or '}}' after a label");
                }
            }
        }

        if (i >= line.Length || line[i] != ' ')
        {
            throw new FormatException($"{where}: expected one space before the value");
        }

        var rest = line[(i + 1)..].Split(' ');
        if (rest.Length is < 1 or > 2 || rest[0].Length == 0)
        {
            throw new FormatException($"{where}: expected 'value [timestamp]'");
        }

        var number = rest[0] switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.TryParse(rest[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
                ? d
                : throw new FormatException($"{where}: bad value '{rest[0]}'"),
        };
        if (rest.Length == 2 && !long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
        {
            throw new FormatException($"{where}: bad timestamp");
        }

        var family = FamilyOf(name, labels, types) ?? throw new FormatException($"{where}: sample of an undeclared family (no TYPE line before it)");
        return new PromSample(name, family, labels, number);
    }

    private static string? FamilyOf(string name, Dictionary<string, string> labels, Dictionary<string, string> types)
    {
        if (types.TryGetValue(name, out var type))
        {
            return type is "histogram" ? null : name;
        }

        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && types.TryGetValue(name[..^suffix.Length], out var t)
                && (t == "histogram" || (t == "summary" && suffix != "_bucket")))
            {
                if (suffix == "_bucket" && !labels.ContainsKey("le"))
                {
                    return null;
                }

                return name[..^suffix.Length];
            }
        }

        return null;
    }

    private void CheckHistograms()
    {
        foreach (var family in Types.Where(t => t.Value == "histogram").Select(t => t.Key))
        {
            var groups = Samples.Where(s => s.Name == family + "_bucket")
                .GroupBy(s => string.Join(",", s.Labels.Where(l => l.Key != "le").OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => l.Key + "=" + l.Value)));
            foreach (var group in groups)
            {
                var buckets = group.Select(s => (Le: s.Labels["le"] == "+Inf" ? double.PositiveInfinity : double.Parse(s.Labels["le"], CultureInfo.InvariantCulture), s.Value))
                    .OrderBy(b => b.Le).ToList();
                if (!double.IsPositiveInfinity(buckets[^1].Le))
                {
                    throw new FormatException($"{family}: no +Inf bucket");
                }

                for (var k = 1; k < buckets.Count; k++)
                {
                    if (buckets[k].Value < buckets[k - 1].Value)
                    {
                        throw new FormatException($"{family}: buckets are not cumulative");
                    }
                }

                var count = Samples.FirstOrDefault(s => s.Name == family + "_count"
                    && string.Join(",", s.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => l.Key + "=" + l.Value)) == group.Key);
                if (count is null || count.Value != buckets[^1].Value)
                {
                    throw new FormatException($"{family}: _count differs from the +Inf bucket");
                }
            }
        }
    }

    private static void RequireMetricName(string name, string where)
    {
        if (name.Length == 0 || !(char.IsAsciiLetter(name[0]) || name[0] is '_' or ':')
            || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':'))
        {
            throw new FormatException($"{where}: bad metric name '{name}'");
        }
    }

    private static bool IsLabelName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static string UnescapeHelp(string text, string where)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] != '\\')
            {
                sb.Append(text[i]);
                continue;
            }

            if (++i >= text.Length || text[i] is not ('\\' or 'n'))
            {
                throw new FormatException($"{where}: bad escape in HELP");
            }

            sb.Append(text[i] == 'n' ? '\n' : '\\');
        }

        return sb.ToString();
    }
}
