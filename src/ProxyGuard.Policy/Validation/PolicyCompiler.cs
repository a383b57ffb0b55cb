using System.Net;
using System.Text.RegularExpressions;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Validates a parsed policy document and compiles it. Collects every problem; compiles only when there is none.</summary>
internal sealed partial class PolicyCompiler
{
    private static readonly Dictionary<string, PolicyMode> s_modes = new(StringComparer.Ordinal) { ["enforce"] = PolicyMode.Enforce, ["audit"] = PolicyMode.Audit };
    private static readonly Dictionary<string, RuleAction> s_actions = new(StringComparer.Ordinal) { ["allow"] = RuleAction.Allow, ["deny"] = RuleAction.Deny };
    private static readonly Dictionary<string, RuleProtocol> s_protocols = new(StringComparer.Ordinal) { ["http"] = RuleProtocol.Http, ["tcp"] = RuleProtocol.Tcp };
    private static readonly Dictionary<string, ContentRuleAction> s_contentActions = new(StringComparer.Ordinal)
    {
        ["deny"] = ContentRuleAction.Deny,
        ["redact"] = ContentRuleAction.Redact,
        ["log"] = ContentRuleAction.Log,
    };

    private static readonly Dictionary<string, bool> s_overLimit = new(StringComparer.Ordinal) { ["deny"] = false, ["allow"] = true };
    private static readonly string[] s_scanLocations = ["headers", "query", "body"];

    private const long MaxBodyLimit = 1024L * 1024 * 1024;

    private readonly NodeReader _r;
    private readonly PolicyLoadOptions _options;
    private readonly string _baseDirectory;
    private readonly int _errorsBefore;
    private readonly List<PolicyDiagnostic> _diagnostics;

    public PolicyCompiler(string file, string baseDirectory, PolicyLoadOptions options, List<PolicyDiagnostic> diagnostics)
    {
        _r = new NodeReader(file, diagnostics);
        _options = options;
        _baseDirectory = baseDirectory;
        _diagnostics = diagnostics;
        _errorsBefore = diagnostics.Count;
    }

    public CompiledPolicy? Compile(YNode root, string filePath, string sha256)
    {
        var top = _r.Mapping(root, string.Empty, PolicyKeys.Top);
        if (top is null)
        {
            return null;
        }

        var versionNode = _r.Required(top, string.Empty, "version");
        if (versionNode is not null)
        {
            var scalar = _r.Scalar(versionNode, "version", "1");
            if (scalar is not null && !(scalar.IsPlain && scalar.Value == "1"))
            {
                _r.Error(scalar, "version", $"unsupported version '{scalar.Value}'; this ProxyGuard reads version 1");
            }
        }

        var mode = top.Get("mode") is { } modeNode ? _r.Enum(modeNode, "mode", s_modes) : PolicyMode.Enforce;
        var defaultAction = top.Get("default") is { } defaultNode ? _r.Enum(defaultNode, "default", s_actions) : RuleAction.Deny;
        var clients = ReadClients(top.Get("clients"));
        var network = ReadNetwork(top.Get("network"));
        var rules = ReadRules(top.Get("rules"), clients);
        var content = ReadContent(top.Get("content"));
        var secrets = ReadSecrets(top.Get("secrets"));
        var tls = ReadTls(top.Get("tls"));

        if (_diagnostics.Count > _errorsBefore)
        {
            return null;
        }

        return new CompiledPolicy(filePath, sha256, mode ?? PolicyMode.Enforce, defaultAction ?? RuleAction.Deny, clients, rules, network, content, secrets, tls);
    }

    private List<ClientSpec> ReadClients(YNode? node)
    {
        var result = new List<ClientSpec>();
        var seq = _r.Sequence(node, "clients");
        if (seq is null)
        {
            return result;
        }

        if (seq.Items.Count == 0)
        {
            _r.Error(seq, "clients", "must not be empty; omit 'clients' to run without client authentication");
        }

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var path = $"clients[{i}]";
            var map = _r.Mapping(seq.Items[i], path, PolicyKeys.Client);
            if (map is null)
            {
                continue;
            }

            var idNode = _r.Required(map, path, "id");
            var id = _r.String(idNode, path + ".id");
            if (id is not null && idNode is not null)
            {
                if (!Identifier().IsMatch(id))
                {
                    _r.Error(idNode, path + ".id", $"invalid client id '{id}'; use letters, digits, '.', '_' and '-' (no ':'), at most 64 characters");
                    id = null;
                }
                else if (seen.TryGetValue(id, out var firstLine))
                {
                    _r.Error(idNode, path + ".id", $"duplicate client id '{id}' (first defined at line {firstLine})");
                    id = null;
                }
                else
                {
                    seen[id] = idNode.Line;
                }
            }

            var token = ReadSecretReference(_r.Required(map, path, "token"), path + ".token");
            var networks = new List<IPNetwork>();
            if (map.Get("networks") is { } networksNode)
            {
                var list = _r.StringList(networksNode, path + ".networks", allowEmpty: false, "omit 'networks' to accept any source address");
                ReadNetworks(list, path + ".networks", networks);
            }

            if (id is not null && token is not null)
            {
                result.Add(new ClientSpec { Id = id, TokenReference = token, Networks = networks, Line = map.Line });
            }
        }

        return result;
    }

    private void ReadNetworks(List<YScalar>? list, string path, List<IPNetwork> into)
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
                _r.Error(list[i], $"{path}[{i}]", error!);
            }
        }
    }

    private NetworkSpec ReadNetwork(YNode? node)
    {
        var networks = new List<IPNetwork>();
        var map = _r.Mapping(node, "network", PolicyKeys.Network);
        if (map?.Get("allow_destinations") is { } allowNode)
        {
            ReadNetworks(_r.StringList(allowNode, "network.allow_destinations", allowEmpty: true), "network.allow_destinations", networks);
        }

        return new NetworkSpec { AllowDestinations = networks };
    }

    private List<RuleSpec> ReadRules(YNode? node, List<ClientSpec> clients)
    {
        var result = new List<RuleSpec>();
        var seq = _r.Sequence(node, "rules");
        if (seq is null)
        {
            return result;
        }

        var clientIds = clients.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var rule = ReadRule(seq.Items[i], $"rules[{i}]", clientIds, seen);
            if (rule is not null)
            {
                result.Add(rule);
            }
        }

        return result;
    }

    private RuleSpec? ReadRule(YNode node, string path, HashSet<string> clientIds, Dictionary<string, int> seen)
    {
        var map = _r.Mapping(node, path, PolicyKeys.Rule);
        if (map is null)
        {
            return null;
        }

        var ok = true;
        var name = ReadName(_r.Required(map, path, "name"), path + ".name", "rule", seen);
        ok &= name is not null;

        List<string> ruleClients = [];
        if (map.Get("clients") is { } clientsNode)
        {
            var list = _r.StringList(clientsNode, path + ".clients", allowEmpty: false, "omit 'clients' to apply the rule to every client");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                if (!clientIds.Contains(list[i].Value))
                {
                    _r.Error(list[i], $"{path}.clients[{i}]", clientIds.Count == 0
                        ? $"unknown client '{list[i].Value}' (the policy defines no 'clients')"
                        : $"unknown client '{list[i].Value}'; defined clients: {string.Join(", ", clientIds)}");
                    ok = false;
                }
                else
                {
                    ruleClients.Add(list[i].Value);
                }
            }
        }

        var hostsNode = _r.Required(map, path, "hosts");
        var (hostMatcher, hostPatterns) = ReadHosts(hostsNode, path + ".hosts", allowAny: true);
        ok &= hostMatcher is not null;

        var ports = new List<int>();
        if (map.Get("ports") is { } portsNode)
        {
            var seq = _r.Sequence(portsNode, path + ".ports");
            if (seq is not null && seq.Items.Count == 0)
            {
                _r.Error(seq, path + ".ports", "must not be empty; omit 'ports' to use the scheme's default port");
            }

            for (var i = 0; seq is not null && i < seq.Items.Count; i++)
            {
                var port = _r.Int(seq.Items[i], $"{path}.ports[{i}]", 1, 65535, "port");
                if (port is null)
                {
                    ok = false;
                }
                else if (!ports.Contains(port.Value))
                {
                    ports.Add(port.Value);
                }
            }
        }

        var methods = new List<string>();
        var methodsNode = map.Get("methods");
        if (methodsNode is not null)
        {
            var list = _r.StringList(methodsNode, path + ".methods", allowEmpty: false, "omit 'methods' to allow every method");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                var method = list[i].Value.ToUpperInvariant();
                if (!HttpToken().IsMatch(method))
                {
                    _r.Error(list[i], $"{path}.methods[{i}]", $"invalid HTTP method '{list[i].Value}'");
                    ok = false;
                }
                else if (method == "CONNECT")
                {
                    _r.Error(list[i], $"{path}.methods[{i}]", "CONNECT is decided by 'hosts' and 'ports'; remove it from 'methods'");
                    ok = false;
                }
                else if (!methods.Contains(method))
                {
                    methods.Add(method);
                }
            }
        }

        var paths = new List<string>();
        var globs = new List<PathGlob>();
        var pathsNode = map.Get("paths");
        if (pathsNode is not null)
        {
            var list = _r.StringList(pathsNode, path + ".paths", allowEmpty: false, "omit 'paths' to match every path");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                if (PathGlob.TryCompile(list[i].Value, out var glob, out var error))
                {
                    paths.Add(list[i].Value);
                    globs.Add(glob!);
                }
                else
                {
                    _r.Error(list[i], $"{path}.paths[{i}]", error!);
                    ok = false;
                }
            }
        }

        var action = _r.Enum(_r.Required(map, path, "action"), path + ".action", s_actions);
        ok &= action is not null;

        var inspectNode = map.Get("inspect");
        var inspect = inspectNode is null ? true : _r.Bool(inspectNode, path + ".inspect");
        var websocketNode = map.Get("websocket");
        var websocket = websocketNode is null ? false : _r.Bool(websocketNode, path + ".websocket");
        var protocolNode = map.Get("protocol");
        var protocol = protocolNode is null ? RuleProtocol.Http : _r.Enum(protocolNode, path + ".protocol", s_protocols);
        ok &= inspect is not null && websocket is not null && protocol is not null;

        var tunnel = protocol == RuleProtocol.Tcp ? TunnelMode.Tcp : inspect == false ? TunnelMode.Passthrough : TunnelMode.Intercept;
        if (tunnel != TunnelMode.Intercept)
        {
            var why = tunnel == TunnelMode.Tcp ? "'protocol: tcp'" : "'inspect: false'";
            foreach (var (key, keyNode) in map.Entries)
            {
                if (key.Value is "methods" or "paths" || (key.Value == "websocket" && websocket == true))
                {
                    _r.Error(key, $"{path}.{key.Value}", $"not allowed with {why}: the proxy does not see requests inside the tunnel");
                    ok = false;
                }
            }

            if (tunnel == TunnelMode.Tcp && inspectNode is not null && inspect == true)
            {
                _r.Error(inspectNode, path + ".inspect", "'inspect: true' contradicts 'protocol: tcp' (raw TCP is never intercepted)");
                ok = false;
            }

            if (tunnel == TunnelMode.Tcp && map.Get("ports") is null)
            {
                _r.Error(protocolNode!, path + ".protocol", "'protocol: tcp' requires 'ports'");
                ok = false;
            }
        }

        if (!ok || name is null || hostMatcher is null || action is null)
        {
            return null;
        }

        return new RuleSpec
        {
            Name = name,
            Clients = ruleClients,
            ClientSet = ruleClients.Count == 0 ? null : ruleClients.ToHashSet(StringComparer.Ordinal),
            Hosts = hostPatterns,
            HostMatcher = hostMatcher,
            Ports = ports,
            Methods = methods,
            MethodSet = methods.Count == 0 ? null : methods.ToHashSet(StringComparer.Ordinal),
            Paths = paths,
            CompiledPaths = globs,
            Action = action.Value,
            Inspect = tunnel == TunnelMode.Intercept,
            WebSocket = websocket == true,
            Protocol = protocol == RuleProtocol.Tcp ? "tcp" : "http",
            TunnelMode = tunnel,
            Line = map.Line,
            Column = map.Column,
        };
    }

    private enum RuleProtocol
    {
        Http,
        Tcp,
    }

    private string? ReadName(YNode? node, string path, string what, Dictionary<string, int> seen)
    {
        var name = _r.String(node, path);
        if (name is null || node is null)
        {
            return null;
        }

        if (!Identifier().IsMatch(name))
        {
            _r.Error(node, path, $"invalid {what} name '{name}'; use letters, digits, '.', '_' and '-', at most 64 characters");
            return null;
        }

        if (what == "rule" && name == CompiledPolicy.DefaultRuleName)
        {
            _r.Error(node, path, "'default' is reserved for the policy default; choose another rule name");
            return null;
        }

        if (seen.TryGetValue(name, out var firstLine))
        {
            _r.Error(node, path, $"duplicate {what} name '{name}' (first defined at line {firstLine})");
            return null;
        }

        seen[name] = node.Line;
        return name;
    }

    private (HostMatcher? Matcher, List<string> Patterns) ReadHosts(YNode? node, string path, bool allowAny)
    {
        var patterns = new List<string>();
        var list = _r.StringList(node, path, allowEmpty: false, "list at least one host");
        if (list is null)
        {
            return (null, patterns);
        }

        var parsed = new List<HostPattern.Parsed>();
        var ok = true;
        for (var i = 0; i < list.Count; i++)
        {
            if (HostPattern.TryParse(list[i].Value, allowAny, out var p, out var error))
            {
                parsed.Add(p);
                patterns.Add(list[i].Value);
            }
            else
            {
                _r.Error(list[i], $"{path}[{i}]", error!);
                ok = false;
            }
        }

        return (ok ? HostPattern.Build(parsed) : null, patterns);
    }

    private ContentSpec ReadContent(YNode? node)
    {
        var map = _r.Mapping(node, "content", PolicyKeys.Content);
        if (map is null)
        {
            return new ContentSpec();
        }

        var ruleNames = new Dictionary<string, int>(StringComparer.Ordinal);
        var rules = new List<ContentRuleSpec>();
        if (_r.Sequence(map.Get("rules"), "content.rules") is { } rulesSeq)
        {
            for (var i = 0; i < rulesSeq.Items.Count; i++)
            {
                if (ReadContentRule(rulesSeq.Items[i], $"content.rules[{i}]", ruleNames) is { } rule)
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
                        _r.Error(builtinScalar, "content.builtin", $"invalid value '{builtinScalar.Value}'; expected all | none | a list of detector ids");
                        break;
                }
            }
            else if (builtinNode is YSequence)
            {
                builtin = ReadDetectorIds(builtinNode, "content.builtin", null, allowEmpty: true);
            }
            else
            {
                _r.Error(builtinNode, "content.builtin", "expected all | none | a list of detector ids");
            }
        }

        bool scanHeaders = true, scanQuery = true, scanBody = true;
        if (map.Get("scan") is { } scanNode)
        {
            var set = ReadLocationSet(scanNode, "content.scan", allowEmpty: true);
            if (set is not null)
            {
                scanHeaders = set.Contains("headers");
                scanQuery = set.Contains("query");
                scanBody = set.Contains("body");
            }
        }

        var maxBody = ContentSpec.DefaultMaxBody;
        if (map.Get("max_body") is { } maxBodyNode && _r.Scalar(maxBodyNode, "content.max_body", "a size") is { } maxBodyScalar)
        {
            if (!PolicyValues.TryParseSize(maxBodyScalar.Value, out maxBody))
            {
                _r.Error(maxBodyScalar, "content.max_body", $"invalid size '{maxBodyScalar.Value}'; use bytes or a number with KiB, MiB or GiB (e.g. 8MiB)");
            }
            else if (maxBody < 1 || maxBody > MaxBodyLimit)
            {
                _r.Error(maxBodyScalar, "content.max_body", $"size must be between 1 byte and 1GiB, got '{maxBodyScalar.Value}'");
            }
        }

        var overLimit = map.Get("over_limit") is { } overLimitNode ? _r.Enum(overLimitNode, "content.over_limit", s_overLimit) : false;

        var exempt = new List<ExemptionSpec>();
        if (_r.Sequence(map.Get("exempt"), "content.exempt") is { } exemptSeq)
        {
            for (var i = 0; i < exemptSeq.Items.Count; i++)
            {
                var path = $"content.exempt[{i}]";
                var entry = _r.Mapping(exemptSeq.Items[i], path, PolicyKeys.Exemption);
                if (entry is null)
                {
                    continue;
                }

                var detectors = ReadDetectorIds(_r.Required(entry, path, "detectors"), path + ".detectors", ruleNames, allowEmpty: false);
                var (hosts, patterns) = ReadHosts(_r.Required(entry, path, "hosts"), path + ".hosts", allowAny: true);
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

    private List<string>? ReadDetectorIds(YNode? node, string path, Dictionary<string, int>? customRules, bool allowEmpty)
    {
        var list = _r.StringList(node, path, allowEmpty, "list at least one detector id");
        if (list is null)
        {
            return null;
        }

        var result = new List<string>();
        var ok = true;
        for (var i = 0; i < list.Count; i++)
        {
            var id = list[i].Value;
            if (!DetectorId().IsMatch(id))
            {
                _r.Error(list[i], $"{path}[{i}]", $"invalid detector id '{id}'");
                ok = false;
            }
            else if (_options.KnownDetectorIds is { } known && !known.Contains(id) && (customRules is null || !customRules.ContainsKey(id)))
            {
                _r.Error(list[i], $"{path}[{i}]", $"unknown detector '{id}'");
                ok = false;
            }
            else if (!result.Contains(id))
            {
                result.Add(id);
            }
        }

        return ok ? result : null;
    }

    private HashSet<string>? ReadLocationSet(YNode node, string path, bool allowEmpty)
    {
        var list = _r.StringList(node, path, allowEmpty, "list at least one of headers, query, body");
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
                _r.Error(list[i], $"{path}[{i}]", $"invalid location '{list[i].Value}'; expected headers | query | body");
                ok = false;
            }
            else if (!set.Add(list[i].Value))
            {
                _r.Error(list[i], $"{path}[{i}]", $"'{list[i].Value}' is listed twice");
                ok = false;
            }
        }

        return ok ? set : null;
    }

    private ContentRuleSpec? ReadContentRule(YNode node, string path, Dictionary<string, int> names)
    {
        var map = _r.Mapping(node, path, PolicyKeys.ContentRule);
        if (map is null)
        {
            return null;
        }

        var name = ReadName(_r.Required(map, path, "name"), path + ".name", "content rule", names);
        var patternScalar = _r.Scalar(_r.Required(map, path, "pattern"), path + ".pattern", "a regular expression");
        Regex? regex = null;
        if (patternScalar is not null)
        {
            regex = CompilePattern(patternScalar, path + ".pattern");
        }

        var action = _r.Enum(_r.Required(map, path, "action"), path + ".action", s_contentActions);
        HostMatcher? hosts = HostMatcher.Any;
        List<string> patterns = ["*"];
        if (map.Get("hosts") is { } hostsNode)
        {
            (hosts, patterns) = ReadHosts(hostsNode, path + ".hosts", allowAny: true);
        }

        if (name is null || regex is null || action is null || hosts is null)
        {
            return null;
        }

        return new ContentRuleSpec { Name = name, Pattern = patternScalar!.Value, Regex = regex, Action = action.Value, Hosts = hosts, HostPatterns = patterns, Line = map.Line };
    }

    private Regex? CompilePattern(YScalar scalar, string path)
    {
        if (scalar.Value.Length == 0)
        {
            _r.Error(scalar, path, "pattern must not be empty");
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
            _r.Error(scalar.Line, column, path, $"invalid regular expression: {ex.Error} at offset {ex.Offset}");
            return null;
        }
        catch (NotSupportedException ex)
        {
            _r.Error(scalar, path, $"regular expression is not supported in linear-time mode (no backreferences, lookarounds, atomic groups or conditionals): {ex.Message}");
            return null;
        }
        catch (ArgumentException ex)
        {
            _r.Error(scalar, path, $"invalid regular expression: {ex.Message}");
            return null;
        }

        if (regex.IsMatch(string.Empty))
        {
            _r.Error(scalar, path, "pattern matches the empty string (it would match everywhere)");
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

    private List<SecretSpec> ReadSecrets(YNode? node)
    {
        var result = new List<SecretSpec>();
        var seq = _r.Sequence(node, "secrets");
        if (seq is null)
        {
            return result;
        }

        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        var placeholders = new Dictionary<string, int>(StringComparer.Ordinal);
        var envNames = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var path = $"secrets[{i}]";
            var map = _r.Mapping(seq.Items[i], path, PolicyKeys.Secret);
            if (map is null)
            {
                continue;
            }

            var name = ReadName(_r.Required(map, path, "name"), path + ".name", "secret", names);
            var value = ReadSecretReference(_r.Required(map, path, "value"), path + ".value");
            var ok = name is not null && value is not null;

            string? placeholder = null;
            if (map.Get("placeholder") is { } placeholderNode && _r.Scalar(placeholderNode, path + ".placeholder", "a string") is { } placeholderScalar)
            {
                placeholder = placeholderScalar.Value;
                if (!Placeholder().IsMatch(placeholder))
                {
                    _r.Error(placeholderScalar, path + ".placeholder", "a placeholder must be at least 16 characters of [A-Za-z0-9_] (so it cannot collide with ordinary text)");
                    ok = false;
                }
                else if (placeholders.TryGetValue(placeholder, out var firstLine))
                {
                    _r.Error(placeholderScalar, path + ".placeholder", $"placeholder is already used by another secret (line {firstLine})");
                    ok = false;
                }
                else
                {
                    placeholders[placeholder] = placeholderScalar.Line;
                }
            }

            string? sandboxEnv = null;
            if (map.Get("sandbox_env") is { } envNode && _r.Scalar(envNode, path + ".sandbox_env", "an environment variable name") is { } envScalar)
            {
                sandboxEnv = envScalar.Value;
                if (!EnvName().IsMatch(sandboxEnv))
                {
                    _r.Error(envScalar, path + ".sandbox_env", $"invalid environment variable name '{sandboxEnv}'; use [A-Za-z_][A-Za-z0-9_]*");
                    ok = false;
                }
                else if (envNames.TryGetValue(sandboxEnv, out var firstLine))
                {
                    _r.Error(envScalar, path + ".sandbox_env", $"sandbox_env '{sandboxEnv}' is already used by another secret (line {firstLine})");
                    ok = false;
                }
                else
                {
                    envNames[sandboxEnv] = envScalar.Line;
                }
            }

            var (hosts, patterns) = ReadHosts(_r.Required(map, path, "hosts"), path + ".hosts", allowAny: false);
            ok &= hosts is not null;

            bool inHeaders = true, inQuery = true, inBody = false;
            if (map.Get("in") is { } inNode)
            {
                var set = ReadLocationSet(inNode, path + ".in", allowEmpty: false);
                ok &= set is not null;
                if (set is not null)
                {
                    inHeaders = set.Contains("headers");
                    inQuery = set.Contains("query");
                    inBody = set.Contains("body");
                }
            }

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
                    InHeaders = inHeaders,
                    InQuery = inQuery,
                    InBody = inBody,
                    Line = map.Line,
                });
            }
        }

        return result;
    }

    private string? ReadSecretReference(YNode? node, string path)
    {
        var scalar = _r.Scalar(node, path, "a secret reference");
        if (scalar is null)
        {
            return null;
        }

        if (!SecretReference.TryParse(scalar.Value, out _, out var error))
        {
            _r.Error(scalar, path, error!);
            return null;
        }

        if (_options.SecretReferenceValidator is { } validator)
        {
            var resolveError = validator(scalar.Value);
            if (resolveError is not null)
            {
                _r.Error(scalar, path, $"secret reference '{scalar.Value}' does not resolve: {resolveError}");
                return null;
            }
        }

        return scalar.Value;
    }

    private TlsSpec ReadTls(YNode? node)
    {
        var files = new List<string>();
        var map = _r.Mapping(node, "tls", PolicyKeys.Tls);
        if (map?.Get("upstream_ca_files") is { } filesNode && _r.StringList(filesNode, "tls.upstream_ca_files", allowEmpty: true) is { } list)
        {
            for (var i = 0; i < list.Count; i++)
            {
                var value = list[i].Value;
                if (value.Length == 0 || value.Any(char.IsControl))
                {
                    _r.Error(list[i], $"tls.upstream_ca_files[{i}]", "invalid file path");
                    continue;
                }

                files.Add(Path.GetFullPath(value, _baseDirectory));
            }
        }

        return new TlsSpec { UpstreamCaFiles = files };
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex Identifier();

    [GeneratedRegex("^[!#$%&'*+.^_`|~0-9A-Z-]{1,32}$")]
    private static partial Regex HttpToken();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex DetectorId();

    [GeneratedRegex("^[A-Za-z0-9_]{16,256}$")]
    private static partial Regex Placeholder();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex EnvName();
}
