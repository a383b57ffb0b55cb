using System.Globalization;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>budgets</c>.</summary>
internal static class BudgetsReader
{
    /// <summary>The dimensions a budget can be counted per, in key order.</summary>
    public static readonly string[] Dimensions = ["client", "host", "rule"];

    /// <summary>Shortest window: the sliding window is kept in 20 slots, so 1 s is 50 ms slots.</summary>
    public static readonly TimeSpan MinWindow = TimeSpan.FromSeconds(1);

    /// <summary>Longest window.</summary>
    public static readonly TimeSpan MaxWindow = TimeSpan.FromDays(7);

    public const long MaxRequests = 1_000_000_000;

    public static List<BudgetSpec> Read(SectionContext c, YNode? node, List<ClientSpec> clients, List<RuleSpec> rules)
    {
        var result = new List<BudgetSpec>();
        var seq = c.R.Sequence(node, "budgets");
        if (seq is null)
        {
            return result;
        }

        var clientIds = clients.Select(client => client.Id).ToHashSet(StringComparer.Ordinal);
        var ruleNames = rules.Select(rule => rule.Name).ToHashSet(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            if (ReadBudget(c.R, seq.Items[i], $"budgets[{i}]", clientIds, ruleNames, seen) is { } budget)
            {
                result.Add(budget);
            }
        }

        return result;
    }

    private static BudgetSpec? ReadBudget(NodeReader r, YNode node, string path, HashSet<string> clientIds, HashSet<string> ruleNames, Dictionary<string, int> seen)
    {
        var map = r.Mapping(node, path, PolicyKeys.Budget);
        if (map is null)
        {
            return null;
        }

        var ok = true;
        var name = CommonReaders.ReadName(r, r.Required(map, path, "name"), path + ".name", "budget", seen);
        ok &= name is not null;

        var hostMatcher = HostMatcher.Any;
        List<string> hosts = [];
        List<string> budgetClients = [];
        string? rule = null;
        if (map.Get("match") is { } matchNode)
        {
            var match = r.Mapping(matchNode, path + ".match", PolicyKeys.BudgetMatch);
            ok &= match is not null;
            if (match?.Get("hosts") is { } hostsNode)
            {
                var (matcher, patterns) = CommonReaders.ReadHosts(r, hostsNode, path + ".match.hosts", allowAny: true);
                ok &= matcher is not null;
                hostMatcher = matcher ?? HostMatcher.None;
                hosts = patterns;
            }

            if (match?.Get("clients") is { } clientsNode)
            {
                var list = r.StringList(clientsNode, path + ".match.clients", allowEmpty: false, "omit 'clients' to count every client");
                ok &= list is not null;
                for (var i = 0; list is not null && i < list.Count; i++)
                {
                    if (!clientIds.Contains(list[i].Value))
                    {
                        r.Error(list[i], $"{path}.match.clients[{i}]", clientIds.Count == 0
                            ? $"unknown client '{list[i].Value}' (the policy defines no 'clients')"
                            : $"unknown client '{list[i].Value}'; defined clients: {string.Join(", ", clientIds)}");
                        ok = false;
                    }
                    else if (!budgetClients.Contains(list[i].Value))
                    {
                        budgetClients.Add(list[i].Value);
                    }
                }
            }

            if (match?.Get("rule") is { } ruleNode)
            {
                rule = r.String(ruleNode, path + ".match.rule");
                if (rule is not null && rule != CompiledPolicy.DefaultRuleName && !ruleNames.Contains(rule))
                {
                    r.Error(ruleNode, path + ".match.rule", ruleNames.Count == 0
                        ? $"unknown rule '{CommonReaders.Printable(rule)}' (the policy has no rules; 'default' names the policy default)"
                        : $"unknown rule '{CommonReaders.Printable(rule)}'" + (NodeReader.Suggest(rule, [.. ruleNames]) is { } close ? $"; did you mean '{close}'?" : $"; rules: {string.Join(", ", ruleNames)}"));
                    rule = null;
                    ok = false;
                }

                ok &= rule is not null;
            }
        }

        var per = new List<string>();
        if (map.Get("per") is { } perNode)
        {
            var list = r.StringList(perNode, path + ".per", allowEmpty: false, "omit 'per' to count per client and host");
            ok &= list is not null;
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                if (Array.IndexOf(Dimensions, list[i].Value) < 0)
                {
                    r.Error(list[i], $"{path}.per[{i}]", $"invalid dimension '{CommonReaders.Printable(list[i].Value)}'; expected client | host | rule");
                    ok = false;
                }
                else if (per.Contains(list[i].Value))
                {
                    r.Error(list[i], $"{path}.per[{i}]", $"'{list[i].Value}' is listed twice");
                    ok = false;
                }
                else
                {
                    per.Add(list[i].Value);
                }
            }
        }
        else
        {
            per.AddRange(["client", "host"]);
        }

        var limits = new List<BudgetLimit>();
        var requestsNode = map.Get("requests");
        var bytesNode = map.Get("upload_bytes");
        if (requestsNode is not null)
        {
            var limit = ReadLimit(r, requestsNode, path + ".requests", BudgetQuantity.Requests);
            ok &= limit is not null;
            if (limit is not null)
            {
                limits.Add(limit);
            }
        }

        if (bytesNode is not null)
        {
            var limit = ReadLimit(r, bytesNode, path + ".upload_bytes", BudgetQuantity.UploadBytes);
            ok &= limit is not null;
            if (limit is not null)
            {
                limits.Add(limit);
            }
        }

        if (requestsNode is null && bytesNode is null)
        {
            r.Error(map, path, "a budget needs 'requests' (e.g. 100/1m) or 'upload_bytes' (e.g. 10MiB/1h), or both");
            ok = false;
        }

        if (!ok || name is null)
        {
            return null;
        }

        return new BudgetSpec
        {
            Name = name,
            Hosts = hosts,
            HostMatcher = hostMatcher,
            Clients = budgetClients,
            Rule = rule,
            Per = [.. Dimensions.Where(per.Contains)],
            Limits = limits,
            Line = map.Line,
            Column = map.Column,
        };
    }

    /// <summary><c>AMOUNT/WINDOW</c>: a count (requests) or a size (upload bytes), a slash, a duration.</summary>
    private static BudgetLimit? ReadLimit(NodeReader r, YNode node, string path, BudgetQuantity quantity)
    {
        var example = quantity == BudgetQuantity.Requests ? "100/1m" : "10MiB/1h";
        var scalar = r.Scalar(node, path, $"AMOUNT/WINDOW, e.g. {example}");
        if (scalar is null)
        {
            return null;
        }

        var text = scalar.Value;
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == text.Length - 1)
        {
            r.Error(scalar, path, $"expected AMOUNT/WINDOW such as {example}, got '{CommonReaders.Printable(text)}'");
            return null;
        }

        var amountText = text[..slash];
        var windowText = text[(slash + 1)..];
        long amount;
        if (quantity == BudgetQuantity.Requests)
        {
            if (!long.TryParse(amountText, NumberStyles.None, CultureInfo.InvariantCulture, out amount) || amount < 1 || amount > MaxRequests)
            {
                r.Error(scalar, path, $"invalid request count '{CommonReaders.Printable(amountText)}'; expected a whole number from 1 to {MaxRequests}");
                return null;
            }
        }
        else if (!PolicyValues.TryParseSize(amountText, out amount) || amount < 1)
        {
            r.Error(scalar, path, $"invalid size '{CommonReaders.Printable(amountText)}'; expected e.g. 512KiB, 10MiB or 1GiB (at least 1 byte)");
            return null;
        }

        if (!PolicyValues.TryParseDuration(windowText, out var window))
        {
            r.Error(scalar, path, $"invalid window '{CommonReaders.Printable(windowText)}'; expected a duration such as 30s, 1m or 1h");
            return null;
        }

        if (window < MinWindow || window > MaxWindow)
        {
            r.Error(scalar, path, $"window {windowText} is out of range; use 1s to 168h");
            return null;
        }

        return new BudgetLimit(quantity, amount, window);
    }
}
