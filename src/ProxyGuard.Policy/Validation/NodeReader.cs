using System.Globalization;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Typed access to YAML nodes that reports every problem at the node's position and keeps going.</summary>
internal sealed class NodeReader
{
    private readonly string _file;
    private readonly List<PolicyDiagnostic> _diagnostics;

    private readonly List<PolicyDiagnostic>? _warnings;

    public NodeReader(string file, List<PolicyDiagnostic> diagnostics, List<PolicyDiagnostic>? warnings = null)
    {
        _file = file;
        _diagnostics = diagnostics;
        _warnings = warnings;
    }

    /// <summary>Something valid that is probably a mistake: reported as <c>warning: ...</c>, never fails the load.</summary>
    public void Warn(YNode node, string path, string message)
    {
        if (_warnings is not null && _warnings.Count < MaxDiagnostics)
        {
            _warnings.Add(new PolicyDiagnostic(_file, node.Line, node.Column, $"warning: {path}: {message}"));
        }
    }

    public void Error(YNode node, string path, string message) => Error(node.Line, node.Column, path, message);

    /// <summary>At most this many problems are reported per file (the rest are counted in one last line).</summary>
    public const int MaxDiagnostics = 100;

    public void Error(int line, int column, string path, string message)
    {
        if (_diagnostics.Count < MaxDiagnostics)
        {
            _diagnostics.Add(new PolicyDiagnostic(_file, line, column, path.Length == 0 ? message : $"{path}: {message}"));
        }
        else if (_diagnostics.Count == MaxDiagnostics)
        {
            _diagnostics.Add(new PolicyDiagnostic(_file, line, column, $"more than {MaxDiagnostics} problems; fix these first"));
        }
    }

    /// <summary>Expects a mapping whose keys are all in <paramref name="allowedKeys"/>; unknown keys are reported.</summary>
    public YMapping? Mapping(YNode? node, string path, string[] allowedKeys)
    {
        if (node is null or YInvalid)
        {
            return null;
        }

        if (node is not YMapping map)
        {
            Error(node, path, $"expected a mapping, got {Describe(node)}");
            return null;
        }

        foreach (var (key, _) in map.Entries)
        {
            if (Array.IndexOf(allowedKeys, key.Value) < 0)
            {
                var suggestion = Suggest(key.Value, allowedKeys);
                var where = path.Length == 0 ? "at the top level" : $"in {path}";
                Error(key, string.Empty, $"unknown key '{key.Value}' {where}" + (suggestion is null ? $"; expected one of: {string.Join(", ", allowedKeys)}" : $"; did you mean '{suggestion}'?"));
            }
        }

        return map;
    }

    /// <summary>Reports a missing required key at the mapping's position.</summary>
    public YNode? Required(YMapping map, string path, string key)
    {
        var node = map.Get(key);
        if (node is null)
        {
            Error(map, path, $"missing required key '{key}'");
        }

        return node;
    }

    public YScalar? Scalar(YNode? node, string path, string expected)
    {
        if (node is null or YInvalid)
        {
            return null;
        }

        if (node is YScalar scalar && !scalar.IsNull)
        {
            return scalar;
        }

        Error(node, path, $"expected {expected}, got {Describe(node)}");
        return null;
    }

    public string? String(YNode? node, string path) => Scalar(node, path, "a string")?.Value;

    public bool? Bool(YNode? node, string path)
    {
        var scalar = Scalar(node, path, "true or false");
        if (scalar is null)
        {
            return null;
        }

        if (scalar.IsPlain)
        {
            switch (scalar.Value)
            {
                case "true" or "True" or "TRUE":
                    return true;
                case "false" or "False" or "FALSE":
                    return false;
            }
        }

        Error(scalar, path, $"expected true or false, got '{scalar.Value}'");
        return null;
    }

    public int? Int(YNode? node, string path, int min, int max, string what)
    {
        var scalar = Scalar(node, path, what);
        if (scalar is null)
        {
            return null;
        }

        if (!scalar.IsPlain || scalar.Value.Length == 0 || scalar.Value.Length > 10 || !scalar.Value.All(char.IsAsciiDigit)
            || !long.TryParse(scalar.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            Error(scalar, path, $"expected {what}, got '{scalar.Value}'");
            return null;
        }

        if (value < min || value > max)
        {
            Error(scalar, path, $"{what} {value} is out of range {min}..{max}");
            return null;
        }

        return (int)value;
    }

    public T? Enum<T>(YNode? node, string path, IReadOnlyDictionary<string, T> values)
        where T : struct
    {
        var expected = string.Join(" | ", values.Keys);
        var scalar = Scalar(node, path, expected);
        if (scalar is null)
        {
            return null;
        }

        if (values.TryGetValue(scalar.Value, out var result))
        {
            return result;
        }

        Error(scalar, path, $"invalid value '{scalar.Value}'; expected {expected}");
        return null;
    }

    /// <summary>A list of scalar strings. <paramref name="allowEmpty"/> false: an empty list is an error.</summary>
    public List<YScalar>? StringList(YNode? node, string path, bool allowEmpty, string emptyHint = "omit the key instead")
    {
        var seq = Sequence(node, path);
        if (seq is null)
        {
            return null;
        }

        if (seq.Items.Count == 0 && !allowEmpty)
        {
            Error(seq, path, $"must not be empty; {emptyHint}");
            return null;
        }

        var result = new List<YScalar>(seq.Items.Count);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var scalar = Scalar(seq.Items[i], $"{path}[{i}]", "a string");
            if (scalar is not null)
            {
                result.Add(scalar);
            }
        }

        return result;
    }

    public YSequence? Sequence(YNode? node, string path)
    {
        if (node is null or YInvalid)
        {
            return null;
        }

        if (node is YSequence seq)
        {
            return seq;
        }

        Error(node, path, $"expected a list, got {Describe(node)}");
        return null;
    }

    private static string Describe(YNode node) => node switch
    {
        YScalar { IsNull: true } => "an empty value",
        YScalar s => $"'{Truncate(s.Value)}'",
        YSequence => "a list",
        _ => "a mapping",
    };

    private static string Truncate(string value) => value.Length > 40 ? value[..40] + "..." : value;

    /// <summary>The candidate closest to <paramref name="key"/> (edit distance at most a third of its length), or null.</summary>
    public static string? Suggest(string key, string[] candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Levenshtein(key.ToLowerInvariant(), candidate);
            if (distance < bestDistance)
            {
                bestDistance = distance;
                best = candidate;
            }
        }

        return bestDistance <= Math.Max(1, key.Length / 3) ? best : null;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
