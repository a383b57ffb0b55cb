using System.Net;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Readers for values that appear in more than one policy section (names, hosts, locations, secret references, CIDRs).</summary>
internal static class CommonReaders
{
    private static readonly string[] s_scanLocations = ["headers", "query", "body"];

    /// <summary>A rule, content-rule or secret name: valid, not reserved, not a duplicate in <paramref name="seen"/>.</summary>
    public static string? ReadName(NodeReader r, YNode? node, string path, string what, Dictionary<string, int> seen)
    {
        var name = r.String(node, path);
        if (name is null || node is null)
        {
            return null;
        }

        if (!PolicyGrammar.IsIdentifier(name))
        {
            r.Error(node, path, $"invalid {what} name '{Printable(name)}'; use letters, digits, '.', '_' and '-', at most 64 characters");
            return null;
        }

        if (what == "rule" && name == CompiledPolicy.DefaultRuleName)
        {
            r.Error(node, path, "'default' is reserved for the policy default; choose another rule name");
            return null;
        }

        if (seen.TryGetValue(name, out var firstLine))
        {
            r.Error(node, path, $"duplicate {what} name '{name}' (first defined at line {firstLine})");
            return null;
        }

        seen[name] = node.Line;
        return name;
    }

    /// <param name="hasPortsKey">The hosts sit next to a <c>ports</c> key (a rule): messages point ports and paths there.</param>
    public static (HostMatcher? Matcher, List<string> Patterns) ReadHosts(NodeReader r, YNode? node, string path, bool allowAny, bool hasPortsKey = false)
    {
        var patterns = new List<string>();
        var list = r.StringList(node, path, allowEmpty: false, "list at least one host");
        if (list is null)
        {
            return (null, patterns);
        }

        var parsed = new List<HostPattern.Parsed>();
        var ok = true;
        for (var i = 0; i < list.Count; i++)
        {
            if (HostPattern.TryParse(list[i].Value, allowAny, hasPortsKey, out var p, out var error))
            {
                parsed.Add(p);
                patterns.Add(list[i].Value);
            }
            else
            {
                r.Error(list[i], $"{path}[{i}]", error!);
                ok = false;
            }
        }

        return (ok ? HostPattern.Build(parsed) : null, patterns);
    }

    public static HashSet<string>? ReadLocationSet(NodeReader r, YNode node, string path, bool allowEmpty)
    {
        var list = r.StringList(node, path, allowEmpty, "list at least one of headers, query, body");
        if (list is null)
        {
            return null;
        }

        var set = new HashSet<string>(StringComparer.Ordinal);
        var ok = true;
        for (var i = 0; i < list.Count; i++)
        {
            if (Array.IndexOf(s_scanLocations, list[i].Value) < 0)
            {
                r.Error(list[i], $"{path}[{i}]", $"invalid location '{list[i].Value}'; expected headers | query | body");
                ok = false;
            }
            else if (!set.Add(list[i].Value))
            {
                r.Error(list[i], $"{path}[{i}]", $"'{list[i].Value}' is listed twice");
                ok = false;
            }
        }

        return ok ? set : null;
    }

    public static string? ReadSecretReference(SectionContext c, YNode? node, string path)
    {
        var scalar = c.R.Scalar(node, path, "a secret reference");
        if (scalar is null)
        {
            return null;
        }

        if (!SecretReference.TryParse(scalar.Value, out _, out var error))
        {
            c.R.Error(scalar, path, error!);
            return null;
        }

        if (c.Options.SecretReferenceValidator is { } validator)
        {
            var resolveError = validator(scalar.Value);
            if (resolveError is not null)
            {
                c.R.Error(scalar, path, $"secret reference '{scalar.Value}' does not resolve: {resolveError}");
                return null;
            }
        }

        return scalar.Value;
    }

    public static void ReadNetworks(NodeReader r, List<YScalar>? list, string path, List<IPNetwork> into)
    {
        if (list is null)
        {
            return;
        }

        for (var i = 0; i < list.Count; i++)
        {
            if (HostPattern.TryParseCidr(list[i].Value, out var network, out var error))
            {
                into.Add(network);
            }
            else
            {
                r.Error(list[i], $"{path}[{i}]", error!);
            }
        }
    }

    /// <summary>A value quoted in a diagnostic with control characters (such as a trailing newline) made visible.</summary>
    public static string Printable(string value)
    {
        var sb = new System.Text.StringBuilder(Math.Min(value.Length, 80));
        foreach (var ch in value.Length > 80 ? value[..80] : value)
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

        return value.Length > 80 ? sb.Append("...").ToString() : sb.ToString();
    }
}
