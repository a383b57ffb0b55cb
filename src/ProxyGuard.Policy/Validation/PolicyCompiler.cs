using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>
/// Validates a parsed policy document and compiles it. Collects every problem; compiles only when there is none.
/// Each top-level section has its own reader (<see cref="ClientsReader"/>, <see cref="NetworkReader"/>,
/// <see cref="RulesReader"/>, <see cref="ContentReader"/>, <see cref="SecretsReader"/>, <see cref="TlsReader"/>, <see cref="BudgetsReader"/>).
/// </summary>
internal sealed class PolicyCompiler
{
    private static readonly Dictionary<string, PolicyMode> s_modes = new(StringComparer.Ordinal) { ["enforce"] = PolicyMode.Enforce, ["audit"] = PolicyMode.Audit };

    private readonly SectionContext _context;
    private readonly int _errorsBefore;
    private readonly List<PolicyDiagnostic> _diagnostics;

    public PolicyCompiler(string file, string baseDirectory, PolicyLoadOptions options, List<PolicyDiagnostic> diagnostics, List<PolicyDiagnostic>? warnings = null)
    {
        _context = new SectionContext(new NodeReader(file, diagnostics, warnings), options, baseDirectory);
        _diagnostics = diagnostics;
        _errorsBefore = diagnostics.Count;
    }

    /// <summary>The <c>tls</c> section as read, also when the policy has other problems (so its files can still be checked).</summary>
    public TlsSpec? Tls { get; private set; }

    public CompiledPolicy? Compile(YNode root, string filePath, string sha256)
    {
        var r = _context.R;
        var top = r.Mapping(root, string.Empty, PolicyKeys.Top);
        if (top is null)
        {
            return null;
        }

        var versionNode = r.Required(top, string.Empty, "version");
        if (versionNode is not null)
        {
            var scalar = r.Scalar(versionNode, "version", "1");
            if (scalar is not null && !(scalar.IsPlain && scalar.Value == "1"))
            {
                r.Error(scalar, "version", scalar.Value == "1"
                    ? "version must be the plain number 1, not the string \"1\" (remove the quotes)"
                    : $"unsupported version '{scalar.Value}'; this ProxyGuard reads version 1");
            }
        }

        var mode = top.Get("mode") is { } modeNode ? r.Enum(modeNode, "mode", s_modes) : PolicyMode.Enforce;
        var defaultAction = top.Get("default") is { } defaultNode ? r.Enum(defaultNode, "default", RulesReader.Actions) : RuleAction.Deny;
        var clients = ClientsReader.Read(_context, top.Get("clients"));
        var network = NetworkReader.Read(_context, top.Get("network"));
        var rules = RulesReader.Read(_context, top.Get("rules"), clients);
        var content = ContentReader.Read(_context, top.Get("content"));
        var secrets = SecretsReader.Read(_context, top.Get("secrets"));
        var tls = TlsReader.Read(_context, top.Get("tls"));
        Tls = tls;
        var budgets = BudgetsReader.Read(_context, top.Get("budgets"), clients, rules);

        if (_diagnostics.Count > _errorsBefore)
        {
            return null;
        }

        return new CompiledPolicy(filePath, sha256, mode ?? PolicyMode.Enforce, defaultAction ?? RuleAction.Deny, clients, rules, network, content, secrets, tls) { Budgets = budgets };
    }
}
