using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ProxyGuard.Policy.Lifecycle;

/// <summary>
/// One semantic difference between two policies. <paramref name="Change"/> is one of <c>added</c>, <c>removed</c>,
/// <c>widened</c> (the new policy reaches more), <c>narrowed</c> (it reaches less), <c>changed</c> (neither or both),
/// <c>reordered</c>, <c>rebound</c> (a secret's hosts, locations or reference); <paramref name="Subject"/> names what
/// changed (<c>rule NAME</c>, <c>secret NAME</c>, <c>client ID</c>, <c>default</c>, <c>mode</c>);
/// <paramref name="Details"/> say how, e.g. <c>+hosts *.example.com</c> (newly reachable) or <c>-methods POST</c>.
/// </summary>
public sealed record PolicyChange(string Change, string Subject, IReadOnlyList<string> Details);

/// <summary>
/// Compares two compiled policies by meaning, not by text. Rules are matched by name. For a rule in both, each
/// dimension (clients, hosts, ports, methods, paths, tunnel mode, WebSocket) is compared as a set of what it matches:
/// a pattern of the new rule that no pattern of the old one covers makes the rule match more, and the reverse
/// makes it match less (<c>*.example.com</c> covers <c>*.api.example.com</c> and <c>api.example.com</c>;
/// <c>/repos/**</c> covers <c>/repos/acme/*</c>; an absent list covers everything). An allow rule that matches more
/// is <c>widened</c>; a deny rule that matches more is <c>narrowed</c> (it takes access away), and so on.
/// </summary>
public static class PolicyDiff
{
    public static IReadOnlyList<PolicyChange> Compare(CompiledPolicy oldPolicy, CompiledPolicy newPolicy)
    {
        ArgumentNullException.ThrowIfNull(oldPolicy);
        ArgumentNullException.ThrowIfNull(newPolicy);
        var changes = new List<PolicyChange>();
        if (oldPolicy.Mode != newPolicy.Mode)
        {
            changes.Add(new("changed", "mode", [$"{Lower(oldPolicy.Mode)} -> {Lower(newPolicy.Mode)}"]));
        }

        if (oldPolicy.Default != newPolicy.Default)
        {
            changes.Add(new(newPolicy.Default == RuleAction.Allow ? "widened" : "narrowed", "default", [$"{Lower(oldPolicy.Default)} -> {Lower(newPolicy.Default)}"]));
        }

        var oldRules = oldPolicy.Rules.ToDictionary(r => r.Name, StringComparer.Ordinal);
        var newRules = newPolicy.Rules.ToDictionary(r => r.Name, StringComparer.Ordinal);
        foreach (var rule in newPolicy.Rules.Where(r => !oldRules.ContainsKey(r.Name)))
        {
            changes.Add(new("added", $"rule {rule.Name}", [$"{Lower(rule.Action)} {Describe(rule)}"]));
        }

        foreach (var rule in oldPolicy.Rules.Where(r => !newRules.ContainsKey(r.Name)))
        {
            changes.Add(new("removed", $"rule {rule.Name}", [$"{Lower(rule.Action)} {Describe(rule)}"]));
        }

        foreach (var oldRule in oldPolicy.Rules.Where(r => newRules.ContainsKey(r.Name)))
        {
            if (CompareRule(oldRule, newRules[oldRule.Name]) is { } change)
            {
                changes.Add(change);
            }
        }

        var oldOrder = oldPolicy.Rules.Select(r => r.Name).Where(newRules.ContainsKey).ToList();
        var newOrder = newPolicy.Rules.Select(r => r.Name).Where(oldRules.ContainsKey).ToList();
        if (!oldOrder.SequenceEqual(newOrder, StringComparer.Ordinal))
        {
            changes.Add(new("reordered", "rules", [$"{string.Join(", ", oldOrder)} -> {string.Join(", ", newOrder)} (the first matching rule decides)"]));
        }

        CompareSecrets(oldPolicy, newPolicy, changes);
        var oldClients = oldPolicy.Clients.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        var newClients = newPolicy.Clients.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        changes.AddRange(newPolicy.Clients.Where(c => !oldClients.Contains(c.Id)).Select(c => new PolicyChange("added", $"client {c.Id}", [])));
        changes.AddRange(oldPolicy.Clients.Where(c => !newClients.Contains(c.Id)).Select(c => new PolicyChange("removed", $"client {c.Id}", [])));
        return changes;
    }

    private static PolicyChange? CompareRule(RuleSpec o, RuleSpec n)
    {
        var more = new List<string>();
        var less = new List<string>();
        var other = new List<string>();
        if (o.Action != n.Action)
        {
            other.Add($"action {Lower(o.Action)} -> {Lower(n.Action)}");
        }

        SetDiff("clients", o.Clients, n.Clients, (a, b) => a == b, more, less);
        SetDiff("hosts", o.Hosts, n.Hosts, HostCovers, more, less);
        SetDiff("ports", PortList(o), PortList(n), (a, b) => a == b, more, less);
        SetDiff("methods", o.Methods, n.Methods, (a, b) => a == b, more, less);
        SetDiff("paths", o.Paths, n.Paths, GlobCovers, more, less);
        if (o.TunnelMode != n.TunnelMode)
        {
            other.Add($"tunnel {Lower(o.TunnelMode)} -> {Lower(n.TunnelMode)}");
        }

        if (o.WebSocket != n.WebSocket)
        {
            (n.WebSocket ? more : less).Add(n.WebSocket ? "+websocket" : "-websocket");
        }

        if (more.Count == 0 && less.Count == 0 && other.Count == 0)
        {
            return null;
        }

        // The rule matches more or less; for a deny rule that is the opposite for access.
        var action = n.Action;
        string kind;
        if (other.Count > 0 || (more.Count > 0 && less.Count > 0))
        {
            kind = "changed";
        }
        else if (more.Count > 0)
        {
            kind = action == RuleAction.Allow ? "widened" : "narrowed";
        }
        else
        {
            kind = action == RuleAction.Allow ? "narrowed" : "widened";
        }

        return new PolicyChange(kind, $"rule {n.Name}", [.. other, .. more, .. less]);
    }

    private static void SetDiff(string what, IReadOnlyList<string> oldList, IReadOnlyList<string> newList, Func<string, string, bool> covers, List<string> more, List<string> less)
    {
        // An empty list matches everything ("every method", "every path", "every client").
        if (oldList.Count == 0 && newList.Count == 0)
        {
            return;
        }

        if (oldList.Count == 0)
        {
            less.Add($"-{what} (any) -> {string.Join(", ", newList)}");
            return;
        }

        if (newList.Count == 0)
        {
            more.Add($"+{what} (any, was {string.Join(", ", oldList)})");
            return;
        }

        var added = newList.Where(n => !oldList.Any(o => covers(o, n))).ToList();
        var removed = oldList.Where(o => !newList.Any(n => covers(n, o))).ToList();
        if (added.Count > 0)
        {
            more.Add($"+{what} {string.Join(", ", added)}");
        }

        if (removed.Count > 0)
        {
            less.Add($"-{what} {string.Join(", ", removed)}");
        }
    }

    private static List<string> PortList(RuleSpec rule) => rule.Ports.Count == 0 ? ["default"] : rule.Ports.Select(p => p.ToString(CultureInfo.InvariantCulture)).ToList();

    /// <summary>True when host pattern <paramref name="outer"/> matches every host <paramref name="inner"/> matches.</summary>
    internal static bool HostCovers(string outer, string inner)
    {
        if (outer == "*")
        {
            return true;
        }

        if (!HostPattern.TryParse(outer, true, out var o, out _) || !HostPattern.TryParse(inner, true, out var i, out _))
        {
            return string.Equals(outer, inner, StringComparison.Ordinal);
        }

        return (o.Kind, i.Kind) switch
        {
            (HostPattern.Kind.Exact, HostPattern.Kind.Exact) => o.Value == i.Value,
            (HostPattern.Kind.Wildcard, HostPattern.Kind.Exact) => i.Value.EndsWith(o.Value, StringComparison.Ordinal),
            (HostPattern.Kind.Wildcard, HostPattern.Kind.Wildcard) => i.Value.EndsWith(o.Value, StringComparison.Ordinal),
            (HostPattern.Kind.Network, HostPattern.Kind.Network) => o.Network.BaseAddress.AddressFamily == i.Network.BaseAddress.AddressFamily
                && o.Network.PrefixLength <= i.Network.PrefixLength && o.Network.Contains(i.Network.BaseAddress),
            (HostPattern.Kind.Network, HostPattern.Kind.Exact) => HostNormalizer.TryGetAddress(i.Value, out var a) && o.Network.BaseAddress.AddressFamily == a.AddressFamily && o.Network.Contains(a),
            _ => false,
        };
    }

    /// <summary>True when glob <paramref name="outer"/> matches every path glob <paramref name="inner"/> matches (conservative: false when unsure).</summary>
    internal static bool GlobCovers(string outer, string inner)
    {
        if (outer == inner)
        {
            return true;
        }

        var o = outer.TrimStart('/').Split('/');
        var i = inner.TrimStart('/').Split('/');
        return Covers(o, 0, i, 0);
    }

    private static bool Covers(string[] o, int oi, string[] i, int ii)
    {
        if (oi == o.Length)
        {
            return ii == i.Length;
        }

        if (o[oi] == "**")
        {
            // '**' covers any rest, including rests with '**'.
            for (var k = ii; k <= i.Length; k++)
            {
                if (Covers(o, oi + 1, i, k))
                {
                    return true;
                }
            }

            return false;
        }

        if (ii == i.Length || i[ii] == "**")
        {
            return false;
        }

        var segmentCovered = o[oi] == i[ii] || o[oi] == "*" || PathGlob.SegmentMatches(o[oi], i[ii]);
        // An inner '*' can only line up with an outer '*' (outer literals never match it), so matching the inner
        // segment as text is sound: every name the inner segment matches, the outer one matches too.
        return segmentCovered && Covers(o, oi + 1, i, ii + 1);
    }

    private static void CompareSecrets(CompiledPolicy oldPolicy, CompiledPolicy newPolicy, List<PolicyChange> changes)
    {
        var oldSecrets = oldPolicy.Secrets.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var newSecrets = newPolicy.Secrets.ToDictionary(s => s.Name, StringComparer.Ordinal);
        foreach (var s in newPolicy.Secrets.Where(s => !oldSecrets.ContainsKey(s.Name)))
        {
            changes.Add(new("added", $"secret {s.Name}", [$"hosts {string.Join(", ", s.HostPatterns)} in {Locations(s)}"]));
        }

        foreach (var s in oldPolicy.Secrets.Where(s => !newSecrets.ContainsKey(s.Name)))
        {
            changes.Add(new("removed", $"secret {s.Name}", [$"hosts {string.Join(", ", s.HostPatterns)}"]));
        }

        foreach (var o in oldPolicy.Secrets.Where(s => newSecrets.ContainsKey(s.Name)))
        {
            var n = newSecrets[o.Name];
            var details = new List<string>();
            var more = new List<string>();
            var less = new List<string>();
            SetDiff("hosts", o.HostPatterns, n.HostPatterns, HostCovers, more, less);
            details.AddRange(more);
            details.AddRange(less);
            if (Locations(o) != Locations(n))
            {
                details.Add($"in {Locations(o)} -> {Locations(n)}");
            }

            if (o.AllowPlainHttp != n.AllowPlainHttp)
            {
                details.Add($"allow_plain_http {o.AllowPlainHttp.ToString().ToLowerInvariant()} -> {n.AllowPlainHttp.ToString().ToLowerInvariant()}");
            }

            // The reference names where the value lives (never the value itself).
            if (!string.Equals(o.ValueReference, n.ValueReference, StringComparison.Ordinal))
            {
                details.Add($"value {o.ValueReference} -> {n.ValueReference}");
            }

            if (!string.Equals(o.Placeholder, n.Placeholder, StringComparison.Ordinal))
            {
                details.Add("placeholder changed (sandboxes need the new one from 'proxyguard env')");
            }

            if (details.Count > 0)
            {
                changes.Add(new("rebound", $"secret {n.Name}", details));
            }
        }
    }

    private static string Locations(SecretSpec s) =>
        string.Join(",", new[] { (s.InHeaders, "headers"), (s.InQuery, "query"), (s.InBody, "body") }.Where(x => x.Item1).Select(x => x.Item2));

    private static string Describe(RuleSpec r)
    {
        var parts = new List<string> { "hosts " + string.Join(", ", r.Hosts) };
        if (r.Clients.Count > 0)
        {
            parts.Add("clients " + string.Join(", ", r.Clients));
        }

        if (r.Ports.Count > 0)
        {
            parts.Add("ports " + string.Join(", ", r.Ports));
        }

        parts.Add("methods " + (r.Methods.Count == 0 ? "any" : string.Join(", ", r.Methods)));
        parts.Add("paths " + (r.Paths.Count == 0 ? "any" : string.Join(", ", r.Paths)));
        if (r.TunnelMode != TunnelMode.Intercept)
        {
            parts.Add("tunnel " + Lower(r.TunnelMode));
        }

        return string.Join("; ", parts);
    }

    private static string Lower<T>(T value)
        where T : struct, Enum => value.ToString().ToLowerInvariant();

    public static string Format(IReadOnlyList<PolicyChange> changes, string format)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (format == "json")
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartArray();
                foreach (var c in changes)
                {
                    w.WriteStartObject();
                    w.WriteString("change", c.Change);
                    w.WriteString("subject", c.Subject);
                    w.WriteStartArray("details");
                    foreach (var d in c.Details)
                    {
                        w.WriteStringValue(d);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
        }

        var sb = new StringBuilder();
        if (changes.Count == 0)
        {
            return "no semantic differences\n";
        }

        if (format == "markdown")
        {
            sb.AppendLine("| change | what | details |");
            sb.AppendLine("| --- | --- | --- |");
            foreach (var c in changes)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {c.Change} | {c.Subject} | {string.Join("<br>", c.Details).Replace("|", "\\|", StringComparison.Ordinal)} |");
            }

            return sb.ToString();
        }

        var width = changes.Max(c => c.Change.Length);
        foreach (var c in changes)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{c.Change.PadRight(width)}  {c.Subject}");
            foreach (var d in c.Details)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"{new string(' ', width)}    {d}");
            }
        }

        return sb.ToString();
    }
}
