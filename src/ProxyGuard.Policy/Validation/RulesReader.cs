using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>rules</c>.</summary>
internal static class RulesReader
{
    private static readonly Dictionary<string, RuleAction> s_actions = new(StringComparer.Ordinal) { ["allow"] = RuleAction.Allow, ["deny"] = RuleAction.Deny };
    private static readonly Dictionary<string, RuleProtocol> s_protocols = new(StringComparer.Ordinal) { ["http"] = RuleProtocol.Http, ["tcp"] = RuleProtocol.Tcp };

    private enum RuleProtocol
    {
        Http,
        Tcp,
    }

    public static IReadOnlyDictionary<string, RuleAction> Actions => s_actions;

    public static List<RuleSpec> Read(SectionContext c, YNode? node, List<ClientSpec> clients)
    {
        var result = new List<RuleSpec>();
        var seq = c.R.Sequence(node, "rules");
        if (seq is null)
        {
            return result;
        }

        var clientIds = clients.Select(client => client.Id).ToHashSet(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var rule = ReadRule(c.R, seq.Items[i], $"rules[{i}]", clientIds, seen);
            if (rule is not null)
            {
                result.Add(rule);
            }
        }

        return result;
    }

    private static RuleSpec? ReadRule(NodeReader r, YNode node, string path, HashSet<string> clientIds, Dictionary<string, int> seen)
    {
        var map = r.Mapping(node, path, PolicyKeys.Rule);
        if (map is null)
        {
            return null;
        }

        var ok = true;
        var name = CommonReaders.ReadName(r, r.Required(map, path, "name"), path + ".name", "rule", seen);
        ok &= name is not null;

        List<string> ruleClients = [];
        if (map.Get("clients") is { } clientsNode)
        {
            var list = r.StringList(clientsNode, path + ".clients", allowEmpty: false, "omit 'clients' to apply the rule to every client");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                if (!clientIds.Contains(list[i].Value))
                {
                    r.Error(list[i], $"{path}.clients[{i}]", clientIds.Count == 0
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

        var hostsNode = r.Required(map, path, "hosts");
        var (hostMatcher, hostPatterns) = CommonReaders.ReadHosts(r, hostsNode, path + ".hosts", allowAny: true, hasPortsKey: true);
        ok &= hostMatcher is not null;

        var ports = new List<int>();
        if (map.Get("ports") is { } portsNode)
        {
            var seq = r.Sequence(portsNode, path + ".ports");
            if (seq is not null && seq.Items.Count == 0)
            {
                r.Error(seq, path + ".ports", "must not be empty; omit 'ports' to use the scheme's default port");
            }

            for (var i = 0; seq is not null && i < seq.Items.Count; i++)
            {
                var port = r.Int(seq.Items[i], $"{path}.ports[{i}]", 1, 65535, "port");
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
            var list = r.StringList(methodsNode, path + ".methods", allowEmpty: false, "omit 'methods' to allow every method");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                var method = list[i].Value.ToUpperInvariant();
                if (!PolicyGrammar.IsHttpToken(method))
                {
                    r.Error(list[i], $"{path}.methods[{i}]", $"invalid HTTP method '{list[i].Value}'");
                    ok = false;
                }
                else if (method == "CONNECT")
                {
                    r.Error(list[i], $"{path}.methods[{i}]", "CONNECT is decided by 'hosts' and 'ports'; remove it from 'methods'");
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
            var list = r.StringList(pathsNode, path + ".paths", allowEmpty: false, "omit 'paths' to match every path");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                if (PathGlob.TryCompile(list[i].Value, out var glob, out var error))
                {
                    paths.Add(list[i].Value);
                    globs.Add(glob!);
                    if (PathGlob.RegexLookalikeWarning(list[i].Value) is { } warning)
                    {
                        r.Warn(list[i], $"{path}.paths[{i}]", warning);
                    }
                }
                else
                {
                    r.Error(list[i], $"{path}.paths[{i}]", error!);
                    ok = false;
                }
            }
        }

        var action = r.Enum(r.Required(map, path, "action"), path + ".action", s_actions);
        ok &= action is not null;

        var inspectNode = map.Get("inspect");
        var inspect = inspectNode is null ? true : r.Bool(inspectNode, path + ".inspect");
        var websocketNode = map.Get("websocket");
        var websocket = websocketNode is null ? false : r.Bool(websocketNode, path + ".websocket");
        var protocolNode = map.Get("protocol");
        var protocol = protocolNode is null ? RuleProtocol.Http : r.Enum(protocolNode, path + ".protocol", s_protocols);
        ok &= inspect is not null && websocket is not null && protocol is not null;

        var tunnel = protocol == RuleProtocol.Tcp ? TunnelMode.Tcp : inspect == false ? TunnelMode.Passthrough : TunnelMode.Intercept;
        if (tunnel != TunnelMode.Intercept)
        {
            var why = tunnel == TunnelMode.Tcp ? "'protocol: tcp'" : "'inspect: false'";
            foreach (var (key, keyNode) in map.Entries)
            {
                if (key.Value is "methods" or "paths" || (key.Value == "websocket" && websocket == true))
                {
                    r.Error(key, $"{path}.{key.Value}", $"not allowed with {why}: the proxy does not see requests inside the tunnel");
                    ok = false;
                }
            }

            if (tunnel == TunnelMode.Tcp && inspectNode is not null && inspect == true)
            {
                r.Error(inspectNode, path + ".inspect", "'inspect: true' contradicts 'protocol: tcp' (raw TCP is never intercepted)");
                ok = false;
            }

            if (tunnel == TunnelMode.Tcp && map.Get("ports") is null)
            {
                r.Error(protocolNode!, path + ".protocol", "'protocol: tcp' requires 'ports'");
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
}
