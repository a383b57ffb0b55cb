using System.Globalization;
using System.Text;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Policy.Lifecycle;

/// <summary>What <see cref="PolicySuggester.Suggest"/> produced: the draft, its cases, and what it left out.</summary>
/// <param name="PolicyYaml">The policy draft (passes <c>policy check</c>).</param>
/// <param name="CasesYaml">Cases built from the observed requests (pass <c>policy test</c> against the draft).</param>
/// <param name="Used">Recorded requests the draft is built from.</param>
/// <param name="Skipped">Recorded decisions left out, with why (e.g. "12 denied by the proxy").</param>
/// <param name="Uncovered">Observed requests the draft does not allow (should be 0: the draft is checked against them).</param>
public sealed record PolicySuggestion(string PolicyYaml, string CasesYaml, int Used, IReadOnlyList<string> Skipped, int Uncovered);

/// <summary>
/// Builds a least-privilege policy draft from recorded traffic: the requests the proxy allowed or, in audit mode,
/// would have denied (<c>audit-deny</c>). Enforced denials are left out: nothing was forwarded for them.
/// <list type="bullet">
/// <item>One rule per host (or wildcard) and method set, with the path globs seen with those methods
/// (<see cref="PathGeneralizer"/>); rules whose ports, methods and paths are the same are merged into one with
/// several hosts.</item>
/// <item>A wildcard <c>*.parent</c> only when at least <see cref="WildcardMinNames"/> distinct names directly below
/// the same parent were seen, the parent lies below a registrable domain (<c>*.cdn.example.com</c>, never
/// <c>*.example.com</c>), and the wildcard passes the policy's own Public Suffix List check (it never spans a
/// public suffix: no <c>*.com</c>, <c>*.co.uk</c>, <c>*.github.io</c>).</item>
/// <item>Ports only when they are not the scheme's default.</item>
/// <item>Credentials the content scanner found in requests become <c>secrets</c> entries with a vault reference to
/// fill in and a derived placeholder (events never hold the value).</item>
/// <item>Comments give counts and first/last seen (UTC).</item>
/// </list>
/// </summary>
public static class PolicySuggester
{
    /// <summary>Distinct names below one parent that justify <c>*.parent</c>.</summary>
    public const int WildcardMinNames = 3;

    /// <summary>Cases written per rule (distinct observed requests).</summary>
    public const int CasesPerRule = 5;

    public static PolicySuggestion Suggest(IEnumerable<ObservedRequest> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var skipped = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var used = new List<Observation>();
        var findings = new List<ObservedRequest>();
        foreach (var e in events)
        {
            if (e.Findings.Count > 0)
            {
                findings.Add(e);
            }

            if (e.Decision is not ("allow" or "audit-deny"))
            {
                Count(skipped, "denied by the proxy (never forwarded)");
                continue;
            }

            var host = HostNormalizer.NormalizeOrNull(e.Host ?? string.Empty);
            if (host is null || e.Port is < 1 or > 65535)
            {
                Count(skipped, "without a usable host and port");
                continue;
            }

            if (Reasons.Find(e.Reason) is { } reason && reason.Stage is DecisionStage.Protocol or DecisionStage.Target)
            {
                Count(skipped, "refused before the rules (protocol or tunnel identity)");
                continue;
            }

            if (e.IsRequest)
            {
                if (string.IsNullOrEmpty(e.Method) || CompiledPolicy.DefaultPort(e.Scheme) == 0)
                {
                    Count(skipped, "requests without a method or scheme");
                    continue;
                }

                var path = PathNormalizer.Normalize(e.PathOnly);
                if (path.Ambiguous)
                {
                    Count(skipped, "requests with an ambiguous path (never allowed by a rule with paths)");
                    continue;
                }

                used.Add(new Observation(e, host, e.Method!.ToUpperInvariant(), path.Path));
            }
            else
            {
                used.Add(new Observation(e, host, null, null));
            }
        }

        var clients = used.Select(o => o.Event.Client).OfType<string>().Where(PolicyValuesOk.Identifier).ToHashSet(StringComparer.Ordinal);
        if (clients.Count > 0)
        {
            var anonymous = used.Count(o => o.Event.Client is null || !clients.Contains(o.Event.Client));
            if (anonymous > 0)
            {
                Count(skipped, "without an authenticated client while other requests had one", anonymous);
                used.RemoveAll(o => o.Event.Client is null || !clients.Contains(o.Event.Client));
            }
        }

        var hostKeys = HostKeys(used.Select(o => o.Host));
        var drafts = BuildRules(used, hostKeys);
        var secrets = BuildSecrets(findings);
        var policy = Render(drafts, secrets, clients, used, skipped);
        var cases = RenderCases(drafts, clients.Count > 0);
        var uncovered = CountUncovered(policy, used);
        return new PolicySuggestion(policy, cases, used.Count, skipped.Select(s => $"{s.Value} {s.Key}").ToList(), uncovered);
    }

    private static void Count(SortedDictionary<string, int> counts, string key, int n = 1) => counts[key] = counts.GetValueOrDefault(key) + n;

    /// <summary>For every observed host, the pattern that will cover it: itself, or <c>*.parent</c> when justified.</summary>
    internal static Dictionary<string, string> HostKeys(IEnumerable<string> hosts)
    {
        var distinct = hosts.Distinct(StringComparer.Ordinal).ToList();
        var keys = distinct.ToDictionary(h => h, h => h, StringComparer.Ordinal);
        var byParent = distinct
            .Where(h => !HostNormalizer.TryGetAddress(h, out _) && h.Count(c => c == '.') >= 2)
            .GroupBy(h => h[(h.IndexOf('.', StringComparison.Ordinal) + 1)..], StringComparer.Ordinal);
        foreach (var group in byParent)
        {
            if (group.Count() < WildcardMinNames)
            {
                continue;
            }

            // Never a whole registrable domain (*.example.com: every service of an organisation), only a zone below it
            // (*.cdn.example.com); and never across a public suffix (the policy's own check refuses those too).
            var parent = group.Key;
            var tail = parent[(parent.IndexOf('.', StringComparison.Ordinal) + 1)..];
            var wildcard = "*." + parent;
            if (!parent.Contains('.', StringComparison.Ordinal) || PublicSuffixList.IsPublicSuffix(parent) || PublicSuffixList.IsPublicSuffix(tail)
                || !HostPattern.TryParse(wildcard, allowAny: false, out _, out _))
            {
                continue;
            }

            foreach (var h in group)
            {
                keys[h] = wildcard;
            }
        }

        return keys;
    }

    private static List<RuleDraft> BuildRules(List<Observation> used, Dictionary<string, string> hostKeys)
    {
        var perKey = new List<RuleDraft>();
        foreach (var keyGroup in used.GroupBy(o => hostKeys[o.Host], StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var requests = keyGroup.Where(o => o.Method is not null).ToList();
            var ports = PortsFor(keyGroup.ToList());
            if (requests.Count == 0)
            {
                // Only CONNECTs (the client went no further, or the tunnel was not intercepted): host and port only.
                perKey.Add(new RuleDraft([keyGroup.Key], ports, [], [], keyGroup.ToList()));
                continue;
            }

            // glob -> methods seen with it; then one rule per distinct method set.
            var globs = requests.GroupBy(o => PathGeneralizer.Generalize(o.Path!), StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Select(o => o.Method!).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
            foreach (var methodGroup in globs.GroupBy(g => string.Join(",", g.Value.Order(StringComparer.Ordinal)), StringComparer.Ordinal))
            {
                var methods = methodGroup.Key.Split(',');
                var paths = PathGeneralizer.Merge(methodGroup.Select(g => g.Key));
                var members = requests.Where(o => methods.Contains(o.Method!, StringComparer.Ordinal)
                    && paths.Any(p => GlobCovers(p, o.Path!))).ToList();
                perKey.Add(new RuleDraft([keyGroup.Key], ports, methods, paths, members));
            }

            // CONNECT-only observations of this host are covered by the request rules (a CONNECT is allowed when an allow rule may allow requests inside).
        }

        // Merge rules that differ only in their hosts.
        var merged = new List<RuleDraft>();
        foreach (var group in perKey.GroupBy(r => r.Signature, StringComparer.Ordinal))
        {
            var list = group.ToList();
            merged.Add(list.Count == 1 ? list[0] : new RuleDraft(list.SelectMany(r => r.Hosts).ToList(), list[0].Ports, list[0].Methods, list[0].Paths, list.SelectMany(r => r.Members).ToList()));
        }

        var names = new HashSet<string>(StringComparer.Ordinal) { CompiledPolicy.DefaultRuleName };
        foreach (var rule in merged)
        {
            var baseName = RuleName(rule.Hosts[0]) + (rule.Methods.Count == 0 ? "-connect" : rule.Methods.All(m => m is "GET" or "HEAD" or "OPTIONS") ? "-read" : "-" + rule.Methods.First(m => m is not ("GET" or "HEAD" or "OPTIONS")).ToLowerInvariant());
            var name = baseName;
            for (var i = 2; !names.Add(name); i++)
            {
                name = baseName + "-" + i.ToString(CultureInfo.InvariantCulture);
            }

            rule.Name = name;
        }

        return merged;
    }

    private static List<int> PortsFor(List<Observation> observations)
    {
        // Ports are written only when some observation did not use its scheme's default (443 for CONNECT and https, 80 for http).
        var pairs = observations.Select(o => (o.Event.Port, Default: o.Method is null ? 443 : CompiledPolicy.DefaultPort(o.Event.Scheme))).ToList();
        return pairs.All(p => p.Port == p.Default) ? [] : pairs.Select(p => p.Port).Distinct().Order().ToList();
    }

    private static string RuleName(string hostKey)
    {
        var sb = new StringBuilder();
        foreach (var c in hostKey.StartsWith("*.", StringComparison.Ordinal) ? "any-" + hostKey[2..] : hostKey)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-');
        }

        var name = sb.ToString().Trim('-');
        name = name.Length == 0 ? "host" : name;
        return name.Length > 48 ? name[..48].TrimEnd('-') : name;
    }

    /// <summary>True when the (valid) glob matches the normalised path, as the policy matches it.</summary>
    internal static bool GlobCovers(string glob, string normalizedPath)
    {
        if (!s_globs.TryGetValue(glob, out var compiled))
        {
            if (s_globs.Count > 10_000)
            {
                s_globs.Clear();
            }

            compiled = PathGlob.TryCompile(glob, out var g, out _) ? g : null;
            s_globs[glob] = compiled;
        }

        return compiled is not null && compiled.IsMatch(normalizedPath);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, PathGlob?> s_globs = new(StringComparer.Ordinal);

    private static List<SecretDraft> BuildSecrets(List<ObservedRequest> withFindings)
    {
        var result = new List<SecretDraft>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var group in withFindings.SelectMany(e => e.Findings.Select(f => (Event: e, f.Detector, f.Location)))
                     .Where(x => x.Location is "header" or "query" or "body" or "websocket" && HostNormalizer.NormalizeOrNull(x.Event.Host ?? string.Empty) is not null)
                     .GroupBy(x => x.Detector, StringComparer.Ordinal)
                     .OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var baseName = RuleName(group.Key);
            var name = baseName;
            for (var i = 2; !names.Add(name); i++)
            {
                name = baseName + "-" + i.ToString(CultureInfo.InvariantCulture);
            }

            var hosts = group.Select(x => HostNormalizer.NormalizeOrNull(x.Event.Host)!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var locations = group.Select(x => x.Location switch { "header" => "headers", "query" => "query", _ => "body" }).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var times = group.Select(x => x.Event.Time).ToList();
            result.Add(new SecretDraft(name, group.Key, hosts, locations, group.Count(), times.Min(), times.Max()));
        }

        return result;
    }

    private static string Render(List<RuleDraft> rules, List<SecretDraft> secrets, HashSet<string> clients, List<Observation> used, SortedDictionary<string, int> skipped)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Policy draft written by 'proxyguard policy suggest' from recorded traffic. Review it before use:");
        sb.AppendLine("# every rule allows only what was seen (methods, path globs, ports); ids, UUIDs, hashes and version");
        sb.AppendLine("# numbers in paths became '*'. Add your network, tls and content sections (see docs/policy.md).");
        if (used.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"# Built from {used.Count} recorded requests, {Stamp(used.Min(o => o.Event.Time))} to {Stamp(used.Max(o => o.Event.Time))}.");
        }

        foreach (var (why, n) in skipped)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"# Left out: {n} {why}.");
        }

        sb.AppendLine("version: 1");
        sb.AppendLine("mode: enforce");
        sb.AppendLine("default: deny");
        if (clients.Count > 0)
        {
            sb.AppendLine("# Clients seen in the traffic. Point each token at the client's real token reference.");
            sb.AppendLine("clients:");
            foreach (var c in clients.Order(StringComparer.Ordinal))
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  - id: {Quote(c)}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"    token: env:PROXYGUARD_CLIENT_TOKEN_{EnvPart(c)}");
            }
        }

        if (rules.Count == 0)
        {
            sb.AppendLine("# No allowed or audit-denied requests were recorded: nothing to allow.");
            sb.AppendLine("rules: []");
        }
        else
        {
            sb.AppendLine("rules:");
            foreach (var rule in rules)
            {
                var members = rule.Members;
                var clientList = members.Select(m => m.Event.Client).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
                var comment =
                    $"  # {members.Count} {(members.Count == 1 ? "request" : "requests")}, first {Stamp(members.Min(m => m.Event.Time))}, last {Stamp(members.Max(m => m.Event.Time))}" +
                    (clientList.Count > 0 ? $"; clients {string.Join(", ", clientList)}" : string.Empty) +
                    (rule.Hosts.Any(h => h.StartsWith("*.", StringComparison.Ordinal))
                        ? $"; names seen: {string.Join(", ", members.Select(m => m.Host).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(6))}"
                        : string.Empty);
                sb.AppendLine(comment);
                sb.AppendLine(CultureInfo.InvariantCulture, $"  - name: {rule.Name}");
                if (clientList.Count > 0)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"    clients: [{string.Join(", ", clientList.Select(Quote))}]");
                }

                sb.AppendLine(CultureInfo.InvariantCulture, $"    hosts: [{string.Join(", ", rule.Hosts.Select(Quote))}]");
                if (rule.Ports.Count > 0)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"    ports: [{string.Join(", ", rule.Ports.Select(p => p.ToString(CultureInfo.InvariantCulture)))}]");
                }

                if (rule.Methods.Count > 0)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"    methods: [{string.Join(", ", rule.Methods)}]");
                    sb.AppendLine("    paths:");
                    foreach (var path in rule.Paths)
                    {
                        var hits = members.Where(m => GlobCovers(path, m.Path!)).ToList();
                        sb.AppendLine(CultureInfo.InvariantCulture, $"      - {Quote(path)}   # {hits.Count}x, last {Stamp(hits.Count == 0 ? default : hits.Max(m => m.Event.Time))}");
                    }
                }

                sb.AppendLine("    action: allow");
            }
        }

        if (secrets.Count > 0)
        {
            sb.AppendLine("# Credentials the content scanner found in requests: the agent held a real value. Store it in your vault,");
            sb.AppendLine("# fix the reference below, and give the agent the placeholder ('proxyguard env' prints it) instead.");
            sb.AppendLine("secrets:");
            foreach (var s in secrets)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  # detector {Quote(s.Detector)}: {s.Count}x in {string.Join(", ", s.Locations)}, first {Stamp(s.First)}, last {Stamp(s.Last)}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"  - name: {s.Name}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"    value: vault:secret/data/proxyguard/{s.Name}#value");
                sb.AppendLine(CultureInfo.InvariantCulture, $"    hosts: [{string.Join(", ", s.Hosts.Select(Quote))}]");
                sb.AppendLine(CultureInfo.InvariantCulture, $"    in: [{string.Join(", ", s.Locations)}]");
            }
        }

        return sb.ToString();
    }

    private static string RenderCases(List<RuleDraft> rules, bool withClients)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Cases written by 'proxyguard policy suggest' from the recorded requests: each must stay allowed by its rule.");
        sb.AppendLine("cases:");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rule in rules)
        {
            var picked = rule.Members
                .GroupBy(m => (m.Event.Client, m.Method, Url: m.Method is null ? ConnectUrl(m) : m.Event.Url))
                .OrderByDescending(g => g.Count()).ThenBy(g => g.Key.Url, StringComparer.Ordinal)
                .Take(CasesPerRule);
            foreach (var g in picked)
            {
                var (client, method, url) = g.Key;
                var name = $"{rule.Name}: {method ?? "CONNECT"} {url}";
                for (var i = 2; !names.Add(name); i++)
                {
                    name = $"{rule.Name}: {method ?? "CONNECT"} {url} ({i.ToString(CultureInfo.InvariantCulture)})";
                }

                sb.AppendLine(CultureInfo.InvariantCulture, $"  - name: {Quote(name)}");
                if (client is not null)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"    client: {Quote(client)}");
                }

                if (method is null)
                {
                    sb.AppendLine("    connect: true");
                }
                else
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"    method: {method}");
                }

                sb.AppendLine(CultureInfo.InvariantCulture, $"    url: {Quote(url)}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"    expect: {{ decision: allow, rule: {rule.Name} }}");
            }
        }

        // And one host nobody asked for stays closed.
        sb.AppendLine("  - name: \"a host that was never seen is denied\"");
        if (withClients && rules.SelectMany(r => r.Members).Select(m => m.Event.Client).OfType<string>().FirstOrDefault() is { } someClient)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"    client: {Quote(someClient)}");
        }

        sb.AppendLine("    url: \"https://never-seen.invalid/\"");
        sb.AppendLine("    expect: { decision: deny, rule: default }");
        return sb.ToString();
    }

    private static string ConnectUrl(Observation o) => $"https://{(o.Host.Contains(':', StringComparison.Ordinal) ? "[" + o.Host + "]" : o.Host)}:{o.Event.Port.ToString(CultureInfo.InvariantCulture)}/";

    /// <summary>Observed requests the draft does not allow (a self-check; 0 unless the generaliser has a bug).</summary>
    private static int CountUncovered(string policyYaml, List<Observation> used)
    {
        var loaded = PolicyLoader.LoadText(policyYaml, "suggested.yaml", new PolicyLoadOptions());
        if (!loaded.Success)
        {
            return used.Count;
        }

        var uncovered = 0;
        foreach (var o in used)
        {
            var url = new TargetUrl(o.Method is null ? "https" : o.Event.Scheme!, o.Host, o.Event.Port, o.Path ?? "/");
            var evaluation = PolicyEvaluator.Evaluate(loaded.Policy!, o.Event.Client, o.Method ?? "GET", url, connectOnly: o.Method is null);
            if (!evaluation.Allowed)
            {
                uncovered++;
            }
        }

        return uncovered;
    }

    internal static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>A YAML double-quoted scalar (every string the draft writes from recorded data goes through this).</summary>
    internal static string Quote(string value)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in value)
        {
            switch (c)
            {
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                default:
                    if (c < 0x20 || c == 0x7f || char.IsSurrogate(c) || c is '\u2028' or '\u2029' or '\u0085')
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.Append('"').ToString();
    }

    private static string EnvPart(string id)
    {
        var sb = new StringBuilder();
        foreach (var c in id)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_');
        }

        return sb.ToString();
    }

    private sealed record Observation(ObservedRequest Event, string Host, string? Method, string? Path);

    private sealed class RuleDraft(List<string> hosts, List<int> ports, IReadOnlyList<string> methods, IReadOnlyList<string> paths, List<Observation> members)
    {
        public List<string> Hosts { get; } = hosts;

        public List<int> Ports { get; } = ports;

        public IReadOnlyList<string> Methods { get; } = methods;

        public IReadOnlyList<string> Paths { get; } = paths;

        public List<Observation> Members { get; } = members;

        public string Name { get; set; } = string.Empty;

        public string Signature => string.Join(",", Ports) + "|" + string.Join(",", Methods) + "|" + string.Join("\n", Paths) + "|"
            + string.Join(",", Members.Select(m => m.Event.Client).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));
    }

    private sealed record SecretDraft(string Name, string Detector, List<string> Hosts, List<string> Locations, int Count, DateTimeOffset First, DateTimeOffset Last);

    private static class PolicyValuesOk
    {
        public static bool Identifier(string id) => Validation.PolicyGrammar.IsIdentifier(id);
    }
}
