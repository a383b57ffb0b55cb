using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>content</c> (custom rules are read by <see cref="ContentRuleReader"/>).</summary>
internal static class ContentReader
{
    private const long MaxBodyLimit = 1024L * 1024 * 1024;

    private static readonly Dictionary<string, bool> s_overLimit = new(StringComparer.Ordinal) { ["deny"] = false, ["allow"] = true };

    public static ContentSpec Read(SectionContext c, YNode? node)
    {
        var r = c.R;
        var map = r.Mapping(node, "content", PolicyKeys.Content);
        if (map is null)
        {
            return new ContentSpec();
        }

        var ruleNames = new Dictionary<string, int>(StringComparer.Ordinal);
        var rules = new List<ContentRuleSpec>();
        if (r.Sequence(map.Get("rules"), "content.rules") is { } rulesSeq)
        {
            for (var i = 0; i < rulesSeq.Items.Count; i++)
            {
                if (ContentRuleReader.Read(c, rulesSeq.Items[i], $"content.rules[{i}]", ruleNames) is { } rule)
                {
                    rules.Add(rule);
                }
            }
        }

        IReadOnlyList<string>? builtin = null;
        if (map.Get("builtin") is { } builtinNode)
        {
            if (builtinNode is YScalar { IsNull: false } builtinScalar)
            {
                switch (builtinScalar.Value)
                {
                    case "all":
                        break;
                    case "none":
                        builtin = [];
                        break;
                    default:
                        r.Error(builtinScalar, "content.builtin", $"invalid value '{builtinScalar.Value}'; expected all | none | a list of detector ids");
                        break;
                }
            }
            else if (builtinNode is YSequence)
            {
                builtin = ReadDetectorIds(c, builtinNode, "content.builtin", null, allowEmpty: true);
            }
            else
            {
                r.Error(builtinNode, "content.builtin", "expected all | none | a list of detector ids");
            }
        }

        bool scanHeaders = true, scanQuery = true, scanBody = true;
        if (map.Get("scan") is { } scanNode)
        {
            var set = CommonReaders.ReadLocationSet(r, scanNode, "content.scan", allowEmpty: true);
            if (set is not null)
            {
                scanHeaders = set.Contains("headers");
                scanQuery = set.Contains("query");
                scanBody = set.Contains("body");
            }
        }

        var maxBody = ContentSpec.DefaultMaxBody;
        if (map.Get("max_body") is { } maxBodyNode && r.Scalar(maxBodyNode, "content.max_body", "a size") is { } maxBodyScalar)
        {
            if (!PolicyValues.TryParseSize(maxBodyScalar.Value, out maxBody))
            {
                r.Error(maxBodyScalar, "content.max_body", $"invalid size '{maxBodyScalar.Value}'; use bytes or a number with KiB, MiB or GiB (e.g. 8MiB)");
            }
            else if (maxBody < 1 || maxBody > MaxBodyLimit)
            {
                r.Error(maxBodyScalar, "content.max_body", $"size must be between 1 byte and 1GiB, got '{maxBodyScalar.Value}'");
            }
        }

        var overLimit = map.Get("over_limit") is { } overLimitNode ? r.Enum(overLimitNode, "content.over_limit", s_overLimit) : false;

        var exempt = new List<ExemptionSpec>();
        if (r.Sequence(map.Get("exempt"), "content.exempt") is { } exemptSeq)
        {
            for (var i = 0; i < exemptSeq.Items.Count; i++)
            {
                var path = $"content.exempt[{i}]";
                var entry = r.Mapping(exemptSeq.Items[i], path, PolicyKeys.Exemption);
                if (entry is null)
                {
                    continue;
                }

                var detectors = ReadDetectorIds(c, r.Required(entry, path, "detectors"), path + ".detectors", ruleNames, allowEmpty: false);
                var (hosts, patterns) = CommonReaders.ReadHosts(r, r.Required(entry, path, "hosts"), path + ".hosts", allowAny: true);
                if (detectors is not null && hosts is not null)
                {
                    exempt.Add(new ExemptionSpec { Detectors = detectors, Hosts = hosts, HostPatterns = patterns, Line = entry.Line });
                }
            }
        }

        return new ContentSpec
        {
            BuiltinDetectorIds = builtin,
            ScanHeaders = scanHeaders,
            ScanQuery = scanQuery,
            ScanBody = scanBody,
            MaxBody = maxBody,
            OverLimitAllow = overLimit ?? false,
            Rules = rules,
            Exempt = exempt,
        };
    }

    private static List<string>? ReadDetectorIds(SectionContext c, YNode? node, string path, Dictionary<string, int>? customRules, bool allowEmpty)
    {
        var r = c.R;
        var list = r.StringList(node, path, allowEmpty, "list at least one detector id");
        if (list is null)
        {
            return null;
        }

        var result = new List<string>();
        var ok = true;
        for (var i = 0; i < list.Count; i++)
        {
            var id = list[i].Value;
            if (!PolicyGrammar.IsDetectorId(id))
            {
                r.Error(list[i], $"{path}[{i}]", $"invalid detector id '{CommonReaders.Printable(id)}'");
                ok = false;
            }
            else if (c.Options.KnownDetectorIds is { } known && !known.Contains(id) && (customRules is null || !customRules.ContainsKey(id)))
            {
                var candidates = known.Concat(customRules?.Keys ?? Enumerable.Empty<string>()).Order(StringComparer.Ordinal).ToArray();
                var suggestion = NodeReader.Suggest(id, candidates);
                r.Error(list[i], $"{path}[{i}]", $"unknown detector '{id}'" + (suggestion is null ? "; see docs/detectors.md for the list" : $"; did you mean '{suggestion}'?"));
                ok = false;
            }
            else if (!result.Contains(id))
            {
                result.Add(id);
            }
        }

        return ok ? result : null;
    }
}
