using ProxyGuard.Policy.Validation;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy;

/// <summary>
/// Loads CASES.yaml files (request → expected decision and rule) and runs them against a compiled policy.
/// Format (see docs/policy.md):
/// <code>
/// cases:
///   - name: npm metadata is readable
///     client: agent-1            # optional
///     method: GET                # default GET
///     url: https://registry.npmjs.org/left-pad
///     connect: false             # true: check only the CONNECT decision
///     headers: { Authorization: "Bearer {{placeholder:github}}" }   # optional
///     body: "text"               # optional (or body_file: relative/to/the/cases/file)
///     expect: { decision: allow, rule: npm-read, findings: [], secrets: [github] }
/// </code>
/// </summary>
public static partial class PolicyCaseRunner
{
    internal static readonly string[] TopKeys = ["cases"];
    internal static readonly string[] CaseKeys = ["name", "client", "method", "url", "connect", "headers", "body", "body_file", "expect"];
    internal static readonly string[] ExpectKeys = ["decision", "rule", "reason", "mode", "websocket", "findings", "secrets", "budgets"];

    private const int Allow = 0;
    private const int Deny = 1;
    private const int AuditDeny = 2;

    /// <summary>The largest case body (inline or from <c>body_file</c>).</summary>
    public const int MaxBodyBytes = 1024 * 1024;

    // The words events and X-ProxyGuard-Decision use, so a case copied from an event passes: audit-deny is a deny
    // that audit mode forwarded (deny matches it too, so the same cases serve both modes).
    private static readonly Dictionary<string, int> s_decisions = new(StringComparer.Ordinal) { ["allow"] = Allow, ["deny"] = Deny, ["audit-deny"] = AuditDeny };
    private static readonly Dictionary<string, TunnelMode> s_modes = new(StringComparer.Ordinal)
    {
        ["intercept"] = TunnelMode.Intercept,
        ["passthrough"] = TunnelMode.Passthrough,
        ["tcp"] = TunnelMode.Tcp,
    };

    /// <summary>Reads and parses a cases file; problems come back as diagnostics with file:line:col.</summary>
    public static (IReadOnlyList<PolicyCase> Cases, IReadOnlyList<PolicyDiagnostic> Diagnostics) LoadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            // Same bounds as a policy file: a regular file of at most 4 MiB, read within the default time bound.
            text = System.Text.Encoding.UTF8.GetString(IO.BoundedFile.ReadAllBytes(path, PolicyLoader.MaxFileBytes, IO.BoundedFile.DefaultTimeout)).TrimStart('\uFEFF');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ([], [new PolicyDiagnostic(path, 1, 1, $"cannot read the cases file: {ex.Message}")]);
        }

        return Parse(text, path);
    }

    /// <summary>Parses cases from text.</summary>
    public static (IReadOnlyList<PolicyCase> Cases, IReadOnlyList<PolicyDiagnostic> Diagnostics) Parse(string yaml, string fileName)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        var diagnostics = new List<PolicyDiagnostic>();
        var cases = new List<PolicyCase>();
        var root = YamlTreeReader.Read(yaml, fileName, diagnostics);
        if (root is null)
        {
            return (cases, diagnostics);
        }

        var r = new NodeReader(fileName, diagnostics);
        var top = r.Mapping(root, string.Empty, TopKeys);
        var seq = top is null ? null : r.Sequence(r.Required(top, string.Empty, "cases"), "cases");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; seq is not null && i < seq.Items.Count; i++)
        {
            var path = $"cases[{i}]";
            var map = r.Mapping(seq.Items[i], path, CaseKeys);
            if (map is null)
            {
                continue;
            }

            var nameNode = r.Required(map, path, "name");
            var name = r.String(nameNode, path + ".name");
            if (name is not null && !names.Add(name))
            {
                r.Error(nameNode!, path + ".name", $"duplicate case name '{name}'");
            }

            var client = map.Get("client") is { } clientNode ? r.String(clientNode, path + ".client") : null;
            var method = map.Get("method") is { } methodNode ? r.String(methodNode, path + ".method")?.ToUpperInvariant() : "GET";
            var urlNode = r.Scalar(r.Required(map, path, "url"), path + ".url", "a URL");
            TargetUrl? url = null;
            if (urlNode is not null && !TargetUrl.TryParse(urlNode.Value, out url, out var urlError))
            {
                r.Error(urlNode, path + ".url", urlError!);
            }

            var connect = map.Get("connect") is { } connectNode ? r.Bool(connectNode, path + ".connect") : false;
            var ok = true;
            var headers = new List<KeyValuePair<string, string>>();
            if (map.Get("headers") is { } headersNode && headersNode is not YMapping)
            {
                r.Error(headersNode, path + ".headers", "expected a mapping of header names to values");
                ok = false;
            }
            else if (map.Get("headers") is YMapping headersMap)
            {
                foreach (var (key, valueNode) in headersMap.Entries)
                {
                    if (key.Value.Length == 0 || !key.Value.All(ch => ch is > ' ' and < (char)0x7F and not ':'))
                    {
                        r.Error(key, path + ".headers", $"invalid header name '{CommonReaders.Printable(key.Value)}'");
                        ok = false;
                    }
                    else if (r.Scalar(valueNode, $"{path}.headers.{key.Value}", "a header value") is { } valueScalar)
                    {
                        headers.Add(new(key.Value, valueScalar.Value));
                    }
                    else
                    {
                        ok = false;
                    }
                }
            }

            byte[]? body = null;
            var bodyNode = map.Get("body");
            var bodyFileNode = map.Get("body_file");
            if (bodyNode is not null && bodyFileNode is not null)
            {
                r.Error(bodyFileNode, path + ".body_file", "give either 'body' or 'body_file', not both");
                ok = false;
            }
            else if (bodyNode is not null)
            {
                if (r.Scalar(bodyNode, path + ".body", "a string") is { } bodyScalar)
                {
                    body = System.Text.Encoding.UTF8.GetBytes(bodyScalar.Value);
                }
                else
                {
                    ok = false;
                }
            }
            else if (bodyFileNode is not null)
            {
                if (r.Scalar(bodyFileNode, path + ".body_file", "a file path") is { } fileScalar)
                {
                    var bodyPath = Path.GetFullPath(fileScalar.Value, Path.GetDirectoryName(Path.GetFullPath(fileName)) ?? Directory.GetCurrentDirectory());
                    try
                    {
                        body = IO.BoundedFile.ReadAllBytes(bodyPath, MaxBodyBytes, IO.BoundedFile.DefaultTimeout);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        r.Error(fileScalar, path + ".body_file", $"cannot read '{CommonReaders.Printable(fileScalar.Value)}': {ex.Message}");
                        ok = false;
                    }
                }
                else
                {
                    ok = false;
                }
            }

            PolicyCaseExpectation? expect = null;
            var expectMap = r.Mapping(r.Required(map, path, "expect"), path + ".expect", ExpectKeys);
            if (expectMap is not null)
            {
                var decision = r.Enum(r.Required(expectMap, path + ".expect", "decision"), path + ".expect.decision", s_decisions);
                var rule = expectMap.Get("rule") is { } ruleNode ? r.String(ruleNode, path + ".expect.rule") : null;
                var reason = expectMap.Get("reason") is { } reasonNode ? r.String(reasonNode, path + ".expect.reason") : null;
                var mode = expectMap.Get("mode") is { } modeNode ? r.Enum(modeNode, path + ".expect.mode", s_modes) : null;
                var webSocket = expectMap.Get("websocket") is { } wsNode ? r.Bool(wsNode, path + ".expect.websocket") : null;
                var findings = expectMap.Get("findings") is { } findingsNode ? Names(r.StringList(findingsNode, path + ".expect.findings", allowEmpty: true)) : null;
                var secrets = expectMap.Get("secrets") is { } secretsNode ? Names(r.StringList(secretsNode, path + ".expect.secrets", allowEmpty: true)) : null;
                var budgets = expectMap.Get("budgets") is { } budgetsNode ? Names(r.StringList(budgetsNode, path + ".expect.budgets", allowEmpty: true)) : null;
                ok &= (expectMap.Get("findings") is null || findings is not null) && (expectMap.Get("secrets") is null || secrets is not null)
                    && (expectMap.Get("budgets") is null || budgets is not null);
                if (decision is not null)
                {
                    expect = new PolicyCaseExpectation(decision == Allow, rule, reason, mode, webSocket, findings, secrets)
                    {
                        Budgets = budgets,
                        AuditDeny = decision == AuditDeny,
                    };
                }
            }

            if (ok && name is not null && method is not null && url is not null && connect is not null && expect is not null)
            {
                var parsed = new PolicyCase(name, client, method, url, connect.Value, expect, fileName, map.Line, map.Column) { Headers = headers, Body = body };
                if (parsed.ConnectOnly && parsed.NeedsContentStages)
                {
                    r.Error(map, path, "a 'connect: true' case checks only the CONNECT: it takes no headers, body, findings, secrets or budgets");
                }
                else
                {
                    cases.Add(parsed);
                }
            }
        }

        return (cases, diagnostics.OrderBy(d => d.Line).ThenBy(d => d.Column).ToList());
    }

    /// <summary>
    /// Runs parsed cases against <paramref name="policy"/>'s rules only. A case that needs the content and secret
    /// stages (headers, a body, expected findings or secrets) fails here: <c>proxyguard policy test</c> runs those.
    /// </summary>
    public static IReadOnlyList<PolicyCaseResult> Run(CompiledPolicy policy, IEnumerable<PolicyCase> cases)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(cases);
        return cases.Select(c => c.NeedsContentStages
            ? new PolicyCaseResult(c, false, PolicyCaseOutcome.From(PolicyEvaluator.Evaluate(policy, c.Client, c.Method, c.Url, c.ConnectOnly)),
                "this case has headers, a body, findings or secrets: it needs the content and secret stages (run it with 'proxyguard policy test')")
            : Compare(c, PolicyCaseOutcome.From(PolicyEvaluator.Evaluate(policy, c.Client, c.Method, c.Url, c.ConnectOnly)))).ToList();
    }

    /// <summary>Runs parsed cases through <paramref name="evaluate"/> (the whole offline decision) and compares.</summary>
    public static async Task<IReadOnlyList<PolicyCaseResult>> RunAsync(
        IEnumerable<PolicyCase> cases, Func<PolicyCase, CancellationToken, Task<PolicyCaseOutcome>> evaluate, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(cases);
        ArgumentNullException.ThrowIfNull(evaluate);
        var results = new List<PolicyCaseResult>();
        foreach (var c in cases)
        {
            results.Add(Compare(c, await evaluate(c, ct)));
        }

        return results;
    }

    /// <summary>
    /// Replaces <c>{{placeholder:NAME}}</c> with secret NAME's placeholder and <c>{{value:NAME}}</c> with the value
    /// the test stands in for it. Returns null and an error for an unknown secret name.
    /// </summary>
    public static string? ExpandMarkers(string text, IReadOnlyDictionary<string, (string Placeholder, string Value)> secrets, out string? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(secrets);
        string? unknown = null;
        var expanded = Marker().Replace(text, m =>
        {
            if (!secrets.TryGetValue(m.Groups[2].Value, out var secret))
            {
                unknown ??= m.Value;
                return m.Value;
            }

            return m.Groups[1].Value == "placeholder" ? secret.Placeholder : secret.Value;
        });
        error = unknown is null ? null : $"{unknown} names no secret of the policy";
        return unknown is null ? expanded : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\{\{(placeholder|value):([A-Za-z0-9_.-]+)\}\}")]
    private static partial System.Text.RegularExpressions.Regex Marker();

    private static List<string>? Names(List<YScalar>? list) => list?.Select(s => s.Value).ToList();

    /// <summary>Parses <paramref name="casesPath"/> and runs it against <paramref name="policy"/>. A file with problems runs no case.</summary>
    public static PolicyCaseReport RunFile(CompiledPolicy policy, string casesPath)
    {
        var (cases, diagnostics) = LoadFile(casesPath);
        return diagnostics.Count > 0 ? new PolicyCaseReport([], diagnostics) : new PolicyCaseReport(Run(policy, cases), []);
    }

    /// <summary>Like <see cref="RunFile"/> for text.</summary>
    public static PolicyCaseReport RunText(CompiledPolicy policy, string yaml, string fileName)
    {
        var (cases, diagnostics) = Parse(yaml, fileName);
        return diagnostics.Count > 0 ? new PolicyCaseReport([], diagnostics) : new PolicyCaseReport(Run(policy, cases), []);
    }

    private static PolicyCaseResult Compare(PolicyCase c, PolicyCaseOutcome actual)
    {
        var problems = new List<string>();
        if (actual.Allowed != c.Expect.Allow || (c.Expect.AuditDeny && actual.Verdict != "audit-deny"))
        {
            problems.Add($"expected {c.Expect.Verdict}, got {actual.Verdict}");
        }

        if (c.Expect.Rule is not null && !string.Equals(c.Expect.Rule, actual.Rule, StringComparison.Ordinal))
        {
            problems.Add($"expected rule '{c.Expect.Rule}', got '{actual.Rule}'");
        }

        if (c.Expect.Reason is not null && !string.Equals(c.Expect.Reason, actual.Reason, StringComparison.Ordinal))
        {
            problems.Add($"expected reason '{c.Expect.Reason}', got '{actual.Reason}'");
        }

        if (c.Expect.Mode is { } mode && actual.TunnelMode != mode)
        {
            problems.Add($"expected mode '{mode.ToString().ToLowerInvariant()}', got '{actual.TunnelMode?.ToString().ToLowerInvariant() ?? "none"}'");
        }

        if (c.Expect.WebSocket is { } webSocket && actual.WebSocketAllowed != webSocket)
        {
            problems.Add($"expected websocket {(webSocket ? "allowed" : "not allowed")}, got {(actual.WebSocketAllowed ? "allowed" : "not allowed")}");
        }

        if (c.Expect.Findings is { } findings && !SameSet(findings, actual.Findings))
        {
            problems.Add($"expected findings [{string.Join(", ", findings)}], got [{string.Join(", ", actual.Findings ?? [])}]");
        }

        if (c.Expect.Secrets is { } secrets && !SameSet(secrets, actual.Secrets))
        {
            problems.Add($"expected secrets [{string.Join(", ", secrets)}], got [{string.Join(", ", actual.Secrets ?? [])}]");
        }

        if (c.Expect.Budgets is { } budgets && !SameSet(budgets, actual.Budgets ?? []))
        {
            problems.Add($"expected budgets [{string.Join(", ", budgets)}], got [{string.Join(", ", actual.Budgets ?? [])}]");
        }

        var message = problems.Count == 0
            ? string.Empty
            : $"{string.Join("; ", problems)} — {c.Method} {c.Url.Scheme}://{c.Url.Host}:{c.Url.Port}{c.Url.RawPath} was {Described(actual.Verdict)} by rule '{actual.Rule}' at the {actual.Stage} stage (reason: {actual.Reason})";
        return new PolicyCaseResult(c, problems.Count == 0, actual, message);
    }

    private static string Described(string verdict) => verdict switch
    {
        "allow" => "allowed",
        "audit-deny" => "audit-denied (forwarded in audit mode; enforce mode would deny it)",
        _ => "denied",
    };

    private static bool SameSet(IReadOnlyList<string> expected, IReadOnlyList<string>? actual) =>
        actual is not null && expected.ToHashSet(StringComparer.Ordinal).SetEquals(actual);
}
