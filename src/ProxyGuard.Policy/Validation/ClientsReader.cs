using System.Net;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>clients</c>.</summary>
internal static class ClientsReader
{
    public static List<ClientSpec> Read(SectionContext c, YNode? node)
    {
        var r = c.R;
        var result = new List<ClientSpec>();
        var seq = r.Sequence(node, "clients");
        if (seq is null)
        {
            return result;
        }

        if (seq.Items.Count == 0)
        {
            r.Error(seq, "clients", "must not be empty; omit 'clients' to run without client authentication");
        }

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var path = $"clients[{i}]";
            var map = r.Mapping(seq.Items[i], path, PolicyKeys.Client);
            if (map is null)
            {
                continue;
            }

            var idNode = r.Required(map, path, "id");
            var id = r.String(idNode, path + ".id");
            if (id is not null && idNode is not null)
            {
                if (!PolicyGrammar.IsIdentifier(id))
                {
                    r.Error(idNode, path + ".id", $"invalid client id '{CommonReaders.Printable(id)}'; use letters, digits, '.', '_' and '-' (no ':'), at most 64 characters");
                    id = null;
                }
                else if (seen.TryGetValue(id, out var firstLine))
                {
                    r.Error(idNode, path + ".id", $"duplicate client id '{id}' (first defined at line {firstLine})");
                    id = null;
                }
                else
                {
                    seen[id] = idNode.Line;
                }
            }

            var token = CommonReaders.ReadSecretReference(c, r.Required(map, path, "token"), path + ".token");
            var networks = new List<IPNetwork>();
            if (map.Get("networks") is { } networksNode)
            {
                var list = r.StringList(networksNode, path + ".networks", allowEmpty: false, "omit 'networks' to accept any source address");
                CommonReaders.ReadNetworks(r, list, path + ".networks", networks);
            }

            if (id is not null && token is not null)
            {
                result.Add(new ClientSpec { Id = id, TokenReference = token, Networks = networks, Line = map.Line });
            }
        }

        return result;
    }
}
