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
///     expect: { decision: allow, rule: npm-read }
/// </code>
/// </summary>
public static class PolicyCaseRunner
{
    internal static readonly string[] TopKeys = ["cases"];
    internal static readonly string[] CaseKeys = ["name", "client", "method", "url", "connect", "expect"];
    internal static readonly string[] ExpectKeys = ["decision", "rule", "reason", "mode", "websocket"];

    private static readonly Dictionary<string, bool> s_decisions = new(StringComparer.Ordinal) { ["allow"] = true, ["deny"] = false };
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
            PolicyCaseExpectation? expect = null;
            var expectMap = r.Mapping(r.Required(map, path, "expect"), path + ".expect", ExpectKeys);
            if (expectMap is not null)
            {
                var decision = r.Enum(r.Required(expectMap, path + ".expect", "decision"), path + ".expect.decision", s_decisions);
                var rule = expectMap.Get("rule") is { } ruleNode ? r.String(ruleNode, path + ".expect.rule") : null;
                var reason = expectMap.Get("reason") is { } reasonNode ? r.String(reasonNode, path + ".expect.reason") : null;
                var mode = expectMap.Get("mode") is { } modeNode ? r.Enum(modeNode, path + ".expect.mode", s_modes) : null;
                var webSocket = expectMap.Get("websocket") is { } wsNode ? r.Bool(wsNode, path + ".expect.websocket") : null;
                if (decision is not null)
                {
                    expect = new PolicyCaseExpectation(decision.Value, rule, reason, mode, webSocket);
                }
            }

            if (name is not null && method is not null && url is not null && connect is not null && expect is not null)
            {
                cases.Add(new PolicyCase(name, client, method, url, connect.Value, expect, fileName, map.Line, map.Column));
            }
        }

        return (cases, diagnostics.OrderBy(d => d.Line).ThenBy(d => d.Column).ToList());
    }

    /// <summary>Runs parsed cases against <paramref name="policy"/>.</summary>
    public static IReadOnlyList<PolicyCaseResult> Run(CompiledPolicy policy, IEnumerable<PolicyCase> cases)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(cases);
        return cases.Select(c => RunOne(policy, c)).ToList();
    }

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

    private static PolicyCaseResult RunOne(CompiledPolicy policy, PolicyCase c)
    {
        var actual = PolicyEvaluator.Evaluate(policy, c.Client, c.Method, c.Url, c.ConnectOnly);
        var problems = new List<string>();
        if (actual.Allowed != c.Expect.Allow)
        {
            problems.Add($"expected {Word(c.Expect.Allow)}, got {Word(actual.Allowed)}");
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

        var message = problems.Count == 0
            ? string.Empty
            : $"{string.Join("; ", problems)} — {c.Method} {c.Url.Scheme}://{c.Url.Host}:{c.Url.Port}{c.Url.RawPath} was {(actual.Allowed ? "allowed" : "denied")} by rule '{actual.Rule}' at the {actual.Stage} stage (reason: {actual.Reason})";
        return new PolicyCaseResult(c, problems.Count == 0, actual, message);
    }

    private static string Word(bool allow) => allow ? "allow" : "deny";
}
