using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>secrets</c>.</summary>
internal static class SecretsReader
{
    public static List<SecretSpec> Read(SectionContext c, YNode? node)
    {
        var r = c.R;
        var result = new List<SecretSpec>();
        var seq = r.Sequence(node, "secrets");
        if (seq is null)
        {
            return result;
        }

        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        var placeholders = new Dictionary<string, int>(StringComparer.Ordinal);
        var envNames = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var path = $"secrets[{i}]";
            var map = r.Mapping(seq.Items[i], path, PolicyKeys.Secret);
            if (map is null)
            {
                continue;
            }

            var name = CommonReaders.ReadName(r, r.Required(map, path, "name"), path + ".name", "secret", names);
            var value = CommonReaders.ReadSecretReference(c, r.Required(map, path, "value"), path + ".value");
            var ok = name is not null && value is not null;

            string? placeholder = null;
            if (map.Get("placeholder") is { } placeholderNode && r.Scalar(placeholderNode, path + ".placeholder", "a string") is { } placeholderScalar)
            {
                placeholder = placeholderScalar.Value;
                if (!PolicyGrammar.IsPlaceholder(placeholder))
                {
                    r.Error(placeholderScalar, path + ".placeholder", "a placeholder must be at least 16 characters of [A-Za-z0-9_] (so it cannot collide with ordinary text)");
                    ok = false;
                }
                else if (placeholders.TryGetValue(placeholder, out var firstLine))
                {
                    r.Error(placeholderScalar, path + ".placeholder", $"placeholder is already used by another secret (line {firstLine})");
                    ok = false;
                }
                else
                {
                    placeholders[placeholder] = placeholderScalar.Line;
                }
            }

            string? sandboxEnv = null;
            if (map.Get("sandbox_env") is { } envNode && r.Scalar(envNode, path + ".sandbox_env", "an environment variable name") is { } envScalar)
            {
                sandboxEnv = envScalar.Value;
                if (!PolicyGrammar.IsEnvName(sandboxEnv))
                {
                    r.Error(envScalar, path + ".sandbox_env", $"invalid environment variable name '{CommonReaders.Printable(sandboxEnv)}'; use [A-Za-z_][A-Za-z0-9_]*, at most 128 characters");
                    ok = false;
                }
                else if (PolicyGrammar.IsReservedEnvName(sandboxEnv))
                {
                    r.Error(envScalar, path + ".sandbox_env", $"'{sandboxEnv}' is reserved: it is set by 'proxyguard env' or changes where a sandbox sends traffic, which CAs it trusts or what it loads; choose another name");
                    ok = false;
                }
                else if (envNames.TryGetValue(sandboxEnv, out var firstLine))
                {
                    r.Error(envScalar, path + ".sandbox_env", $"sandbox_env '{sandboxEnv}' is already used by another secret (line {firstLine})");
                    ok = false;
                }
                else
                {
                    envNames[sandboxEnv] = envScalar.Line;
                }
            }

            var hostsNode = r.Required(map, path, "hosts");
            var (hosts, patterns) = CommonReaders.ReadHosts(r, hostsNode, path + ".hosts", allowAny: false);
            ok &= hosts is not null;

            bool inHeaders = true, inQuery = true, inBody = false;
            if (map.Get("in") is { } inNode)
            {
                var set = CommonReaders.ReadLocationSet(r, inNode, path + ".in", allowEmpty: false);
                ok &= set is not null;
                if (set is not null)
                {
                    inHeaders = set.Contains("headers");
                    inQuery = set.Contains("query");
                    inBody = set.Contains("body");
                }
            }

            var plainNode = map.Get("allow_plain_http");
            var allowPlainHttp = plainNode is null ? false : r.Bool(plainNode, path + ".allow_plain_http");
            ok &= allowPlainHttp is not null;

            if (ok)
            {
                result.Add(new SecretSpec
                {
                    Name = name!,
                    ValueReference = value!,
                    Placeholder = placeholder,
                    SandboxEnv = sandboxEnv,
                    Hosts = hosts!,
                    HostPatterns = patterns,
                    HostPositions = hostsNode is YSequence hostList && hostList.Items.Count == patterns.Count ? hostList.Items.Select(i => (i.Line, i.Column)).ToList() : [],
                    InHeaders = inHeaders,
                    InQuery = inQuery,
                    InBody = inBody,
                    AllowPlainHttp = allowPlainHttp!.Value,
                    Line = map.Line,
                    Column = map.Column,
                });
            }
        }

        return result;
    }
}
