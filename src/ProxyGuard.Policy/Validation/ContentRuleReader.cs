using System.Text.RegularExpressions;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads one <c>content.rules[]</c> entry and compiles its pattern.</summary>
internal static class ContentRuleReader
{
    private static readonly Dictionary<string, ContentRuleAction> s_contentActions = new(StringComparer.Ordinal)
    {
        ["deny"] = ContentRuleAction.Deny,
        ["redact"] = ContentRuleAction.Redact,
        ["log"] = ContentRuleAction.Log,
    };

    public static ContentRuleSpec? Read(SectionContext c, YNode node, string path, Dictionary<string, int> names)
    {
        var r = c.R;
        var map = r.Mapping(node, path, PolicyKeys.ContentRule);
        if (map is null)
        {
            return null;
        }

        var name = CommonReaders.ReadName(r, r.Required(map, path, "name"), path + ".name", "content rule", names);
        var patternScalar = r.Scalar(r.Required(map, path, "pattern"), path + ".pattern", "a regular expression");
        Regex? regex = null;
        if (patternScalar is not null)
        {
            regex = CompilePattern(r, patternScalar, path + ".pattern");
        }

        var action = r.Enum(r.Required(map, path, "action"), path + ".action", s_contentActions);
        HostMatcher? hosts = HostMatcher.Any;
        List<string> patterns = ["*"];
        if (map.Get("hosts") is { } hostsNode)
        {
            (hosts, patterns) = CommonReaders.ReadHosts(r, hostsNode, path + ".hosts", allowAny: true);
        }

        if (name is null || regex is null || action is null || hosts is null)
        {
            return null;
        }

        return new ContentRuleSpec { Name = name, Pattern = patternScalar!.Value, Regex = regex, Action = action.Value, Hosts = hosts, HostPatterns = patterns, Line = map.Line };
    }

    private static Regex? CompilePattern(NodeReader r, YScalar scalar, string path)
    {
        if (scalar.Value.Length == 0)
        {
            r.Error(scalar, path, "pattern must not be empty");
            return null;
        }

        // The CPU budget first: it is cheap, and an oversized pattern is refused before the engine builds it.
        if (RegexCost.Check(scalar.Value) is { } cost)
        {
            r.Error(scalar.Line, scalar.Column + PatternOffset(scalar, cost.Offset + 1), path, cost.Message);
            return null;
        }

        Regex regex;
        try
        {
            regex = new Regex(scalar.Value, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        }
        catch (RegexParseException ex)
        {
            var column = scalar.Column + PatternOffset(scalar, ex.Offset);
            r.Error(scalar.Line, column, path, $"invalid regular expression: {ex.Error} at offset {ex.Offset}");
            return null;
        }
        catch (NotSupportedException ex)
        {
            r.Error(scalar, path, $"regular expression is not supported in linear-time mode (no backreferences, lookarounds, atomic groups or conditionals): {ex.Message}");
            return null;
        }
        catch (ArgumentException ex)
        {
            r.Error(scalar, path, $"invalid regular expression: {ex.Message}");
            return null;
        }

        if (regex.IsMatch(string.Empty))
        {
            r.Error(scalar, path, "pattern matches the empty string (it would match everywhere)");
            return null;
        }

        return regex;
    }

    /// <summary>Maps an offset inside the pattern to a column offset in the source, exactly for plain and simple quoted scalars.</summary>
    private static int PatternOffset(YScalar scalar, int offset)
    {
        var at = Math.Clamp(offset - 1, 0, Math.Max(0, scalar.Value.Length - 1));
        return scalar.Style switch
        {
            YamlDotNet.Core.ScalarStyle.Plain => at,
            YamlDotNet.Core.ScalarStyle.SingleQuoted when !scalar.Value.Contains('\'', StringComparison.Ordinal) => at + 1,
            YamlDotNet.Core.ScalarStyle.DoubleQuoted when !scalar.Value.Contains('\\', StringComparison.Ordinal) && !scalar.Value.Contains('"', StringComparison.Ordinal) => at + 1,
            _ => 0,
        };
    }
}
