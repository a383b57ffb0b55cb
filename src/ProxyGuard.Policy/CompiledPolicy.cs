using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Policy;

/// <summary>
/// An immutable, validated policy snapshot. Thread-safe: one instance serves any number of concurrent decisions.
/// </summary>
public sealed class CompiledPolicy
{
    /// <summary>The rule name reported when no rule matched.</summary>
    public const string DefaultRuleName = "default";

    private readonly Dictionary<string, ClientSpec> _clientsById;
    private readonly RuleIndex _index;

    internal CompiledPolicy(
        string filePath,
        string sha256,
        PolicyMode mode,
        RuleAction defaultAction,
        IReadOnlyList<ClientSpec> clients,
        IReadOnlyList<RuleSpec> rules,
        NetworkSpec network,
        ContentSpec content,
        IReadOnlyList<SecretSpec> secrets,
        TlsSpec tls)
    {
        FilePath = filePath;
        Sha256 = sha256;
        LoadedAt = DateTimeOffset.UtcNow;
        Mode = mode;
        Default = defaultAction;
        Clients = clients;
        Rules = rules;
        Network = network;
        Content = content;
        Secrets = secrets;
        Tls = tls;
        _clientsById = clients.ToDictionary(c => c.Id, StringComparer.Ordinal);
        _index = new RuleIndex(rules);
    }

    public string FilePath { get; }

    /// <summary>Lower-case hex SHA-256 of the policy file's bytes.</summary>
    public string Sha256 { get; }

    public DateTimeOffset LoadedAt { get; }

    public PolicyMode Mode { get; }

    public RuleAction Default { get; }

    /// <summary>Clients; when non-empty every connection must authenticate as one of them.</summary>
    public IReadOnlyList<ClientSpec> Clients { get; }

    public bool RequiresAuthentication => Clients.Count > 0;

    public IReadOnlyList<RuleSpec> Rules { get; }

    public NetworkSpec Network { get; }

    public ContentSpec Content { get; }

    public IReadOnlyList<SecretSpec> Secrets { get; }

    public TlsSpec Tls { get; }

    /// <summary>Request and upload-byte budgets (<c>budgets</c>); every budget whose match applies counts a request.</summary>
    public IReadOnlyList<BudgetSpec> Budgets { get; init; } = [];

    /// <summary>The budgets that count a request the rule <paramref name="rule"/> allowed (host already normalised).</summary>
    public IReadOnlyList<BudgetSpec> BudgetsFor(string? clientId, string normalizedHost, string rule)
    {
        if (Budgets.Count == 0)
        {
            return [];
        }

        var result = new List<BudgetSpec>();
        foreach (var budget in Budgets)
        {
            if (budget.Matches(clientId, normalizedHost, rule))
            {
                result.Add(budget);
            }
        }

        return result;
    }

    /// <summary>Finds a client by id (ordinal comparison).</summary>
    public ClientSpec? FindClient(string id) => _clientsById.GetValueOrDefault(id);

    /// <summary>
    /// Decides a CONNECT to <paramref name="host"/>:<paramref name="port"/> before any TLS. Rules matching the client,
    /// host and port (a rule without <c>ports</c> matches 443) are walked in order: the first without method/path
    /// constraints decides; an allow rule with constraints allows the tunnel in <see cref="TunnelMode.Intercept"/>
    /// mode (each request is decided later); a deny rule with constraints is skipped. Otherwise the default applies.
    /// </summary>
    internal RuleMatch MatchConnect(string? clientId, string host, int port)
    {
        if (!HostNormalizer.TryNormalize(host ?? string.Empty, out var normalized, out _))
        {
            return new RuleMatch(false, DefaultRuleName, Reasons.InvalidHost);
        }

        if (port is < 1 or > 65535)
        {
            return new RuleMatch(false, DefaultRuleName, Reasons.InvalidPort);
        }

        // Only the rules whose host patterns can match, in policy order (see RuleIndex): first match still wins.
        foreach (var r in _index.Candidates(normalized))
        {
            var rule = Rules[r];
            if (!MatchesClient(rule, clientId) || !MatchesPort(rule, port, 443) || !rule.HostMatcher.Matches(normalized))
            {
                continue;
            }

            if (!rule.HasRequestConstraints)
            {
                return rule.Action == RuleAction.Allow
                    ? new RuleMatch(true, rule.Name, Reasons.RuleAllow, rule.TunnelMode)
                    : new RuleMatch(false, rule.Name, Reasons.RuleDeny);
            }

            if (rule.Action == RuleAction.Allow)
            {
                return new RuleMatch(true, rule.Name, Reasons.RuleAllowSomeRequests);
            }
        }

        return Default == RuleAction.Allow
            ? new RuleMatch(true, DefaultRuleName, Reasons.DefaultAllow)
            : new RuleMatch(false, DefaultRuleName, Reasons.NoRuleAllowsHostPort);
    }

    /// <summary>
    /// Decides one HTTP request (absolute-form, or inside an intercepted tunnel). First match wins over the rules that
    /// can carry HTTP (tunnel-only rules, <c>inspect: false</c> and <c>protocol: tcp</c>, are skipped); then the default.
    /// An ambiguous path never matches an allow rule that has <c>paths</c>, but does match a deny rule that has them.
    /// Likewise a plain-HTTP request to port 443 never matches an allow rule (port 443 is HTTPS), but does match a deny
    /// rule; refused by the default, it reports <see cref="Reasons.PlainHttpOnHttpsPort"/> when an allow rule would
    /// otherwise have taken it.
    /// </summary>
    internal RuleMatch MatchRequest(string? clientId, string scheme, string host, int port, string method, string rawPath)
    {
        if (!HostNormalizer.TryNormalize(host ?? string.Empty, out var normalized, out _))
        {
            return new RuleMatch(false, DefaultRuleName, Reasons.InvalidHost);
        }

        var defaultPort = DefaultPort(scheme);
        var upperMethod = (method ?? string.Empty).ToUpperInvariant();
        var path = PathNormalizer.Normalize(rawPath ?? string.Empty);
        var skippedForAmbiguity = false;
        var plainOnHttpsPort = IsPlainHttpOnHttpsPort(port, defaultPort);
        var skippedForPlainHttp = false;
        foreach (var r in _index.Candidates(normalized))
        {
            var rule = Rules[r];
            if (rule.TunnelMode != TunnelMode.Intercept)
            {
                continue;
            }

            if (!MatchesClient(rule, clientId) || !MatchesPort(rule, port, defaultPort) || !rule.HostMatcher.Matches(normalized))
            {
                continue;
            }

            if (rule.MethodSet is not null && !rule.MethodSet.Contains(upperMethod))
            {
                continue;
            }

            if (rule.CompiledPaths.Count > 0)
            {
                if (path.Ambiguous)
                {
                    if (rule.Action == RuleAction.Allow)
                    {
                        skippedForAmbiguity = true;
                        continue;
                    }
                }
                else if (!MatchesAnyPath(rule, path.Path))
                {
                    continue;
                }
            }

            if (rule.Action == RuleAction.Allow && plainOnHttpsPort)
            {
                // Written for HTTPS: it does not let cleartext through to the same port (a deny rule still denies).
                skippedForPlainHttp = true;
                continue;
            }

            return rule.Action == RuleAction.Allow
                ? new RuleMatch(true, rule.Name, Reasons.RuleAllow, WebSocket: rule.WebSocket)
                : new RuleMatch(false, rule.Name, path.Ambiguous && rule.CompiledPaths.Count > 0 ? Reasons.AmbiguousPath : Reasons.RuleDeny);
        }

        if (Default == RuleAction.Allow)
        {
            return new RuleMatch(true, DefaultRuleName, Reasons.DefaultAllow);
        }

        return new RuleMatch(false, DefaultRuleName,
            skippedForPlainHttp ? Reasons.PlainHttpOnHttpsPort : skippedForAmbiguity ? Reasons.AmbiguousPath : Reasons.NoRuleMatched);
    }

    /// <summary>
    /// Why no allow rule took a request the default refused: for the allow rules that name its host (closest first,
    /// at most <paramref name="max"/>), what matched and what each lacked, e.g.
    /// <c>rule 'read' (line 6): client, host and port matched; method POST is not in [GET]</c>.
    /// <paramref name="method"/> null explains a CONNECT (host and port only).
    /// </summary>
    public IReadOnlyList<string> NearMisses(string? clientId, string scheme, string host, int port, string? method, string? rawPath, int max = 3)
    {
        if (!HostNormalizer.TryNormalize(host ?? string.Empty, out var normalized, out _))
        {
            return [];
        }

        var connect = method is null;
        var defaultPort = connect ? HttpsPort : DefaultPort(scheme);
        var path = PathNormalizer.Normalize(rawPath ?? "/");
        var misses = new List<(int Missed, int Order, string Text)>();
        for (var i = 0; i < Rules.Count; i++)
        {
            var rule = Rules[i];
            if (rule.Action != RuleAction.Allow || !rule.HostMatcher.Matches(normalized))
            {
                continue;
            }

            var matched = new List<string>();
            var missed = new List<string>();
            if (rule.ClientSet is not null)
            {
                if (clientId is not null && rule.ClientSet.Contains(clientId))
                {
                    matched.Add("client");
                }
                else
                {
                    missed.Add(clientId is null ? $"no client was identified; the rule is for [{string.Join(", ", rule.Clients)}]" : $"client '{clientId}' is not in [{string.Join(", ", rule.Clients)}]");
                }
            }

            matched.Add("host");
            if (connect ? MatchesPort(rule, port, defaultPort) : MatchesRequestPort(rule, port, defaultPort))
            {
                matched.Add("port");
            }
            else if (!connect && port == HttpsPort && defaultPort != HttpsPort)
            {
                missed.Add("port 443 is for HTTPS only: a plain-HTTP request to it matches no allow rule");
            }
            else
            {
                missed.Add(rule.Ports.Count == 0
                    ? $"port {port} is not {defaultPort} (a rule without 'ports' takes the scheme's default port)"
                    : $"port {port} is not in [{string.Join(", ", rule.Ports)}]");
            }

            if (!connect)
            {
                var upper = method!.ToUpperInvariant();
                if (rule.TunnelMode != TunnelMode.Intercept)
                {
                    missed.Add("it is a tunnel rule (inspect: false or protocol: tcp), which decides only CONNECTs");
                }

                if (rule.MethodSet is not null)
                {
                    if (rule.MethodSet.Contains(upper))
                    {
                        matched.Add("method");
                    }
                    else
                    {
                        missed.Add($"method {upper} is not in [{string.Join(", ", rule.Methods)}]");
                    }
                }

                if (rule.CompiledPaths.Count > 0)
                {
                    if (path.Ambiguous)
                    {
                        missed.Add("the path is ambiguous, and an ambiguous path never matches an allow rule with 'paths'");
                    }
                    else if (MatchesAnyPath(rule, path.Path))
                    {
                        matched.Add("path");
                    }
                    else
                    {
                        missed.Add($"path {path.Path} matches none of [{string.Join(", ", rule.Paths)}]");
                    }
                }
            }

            if (missed.Count > 0)
            {
                var matchedText = matched.Count == 1 ? matched[0] : string.Join(", ", matched.Take(matched.Count - 1)) + " and " + matched[^1];
                misses.Add((missed.Count, i, $"rule '{rule.Name}' (line {rule.Line}): {matchedText} matched; {string.Join("; ", missed)}"));
            }
        }

        return misses.OrderBy(m => m.Missed).ThenBy(m => m.Order).Take(max).Select(m => m.Text).ToList();
    }

    /// <summary>The scheme's default port: 443 for https/wss, 80 for http/ws, otherwise 0 (no default).</summary>
    public static int DefaultPort(string? scheme) => scheme?.ToLowerInvariant() switch
    {
        "https" or "wss" => 443,
        "http" or "ws" => 80,
        _ => 0,
    };

    private static bool MatchesClient(RuleSpec rule, string? clientId) =>
        rule.ClientSet is null || (clientId is not null && rule.ClientSet.Contains(clientId));

    /// <summary>
    /// A request's port for an allow rule: as <see cref="MatchesPort"/>, except that port 443 means HTTPS. A plain-HTTP
    /// (<c>http</c>/<c>ws</c>) request to port 443 matches no allow rule, even one that lists 443: nothing verified who
    /// answers, and a rule written for HTTPS must not also allow cleartext to the same port.
    /// </summary>
    internal static bool MatchesRequestPort(RuleSpec rule, int port, int defaultPort) =>
        !IsPlainHttpOnHttpsPort(port, defaultPort) && MatchesPort(rule, port, defaultPort);

    /// <summary>A request whose scheme is not HTTPS (<c>http</c>, <c>ws</c>) to port 443.</summary>
    internal static bool IsPlainHttpOnHttpsPort(int port, int defaultPort) => port == HttpsPort && defaultPort != HttpsPort;

    internal const int HttpsPort = 443;

    internal static bool MatchesPort(RuleSpec rule, int port, int defaultPort)
    {
        if (rule.Ports.Count == 0)
        {
            return port == defaultPort && defaultPort != 0;
        }

        // Indexed loops here and below: foreach over an IReadOnlyList boxes its enumerator, once per rule per request.
        var ports = rule.Ports;
        for (var i = 0; i < ports.Count; i++)
        {
            if (ports[i] == port)
            {
                return true;
            }
        }

        return false;
    }

    private static bool MatchesAnyPath(RuleSpec rule, string normalizedPath)
    {
        var globs = rule.CompiledPaths;
        for (var i = 0; i < globs.Count; i++)
        {
            if (globs[i].IsMatch(normalizedPath))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>What the rules matched; <see cref="PolicyDecider"/> turns it into a <see cref="Decision"/>.</summary>
internal readonly record struct RuleMatch(bool Allowed, string Rule, Reason Reason, TunnelMode Mode = TunnelMode.Intercept, bool WebSocket = false);
