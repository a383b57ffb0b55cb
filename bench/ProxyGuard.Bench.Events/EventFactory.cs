using ProxyGuard.Audit;

namespace ProxyGuard.Bench.Events;

/// <summary>Realistic events: a handful of agents calling model, package and source-control APIs.</summary>
internal sealed class EventFactory
{
    private static readonly string[] Hosts =
    [
        "api.openai.com", "api.anthropic.com", "registry.npmjs.org", "pypi.org", "files.pythonhosted.org",
        "github.com", "api.github.com", "objects.githubusercontent.com", "proxy.golang.org", "crates.io",
    ];

    private static readonly string[] Paths =
    [
        "/v1/chat/completions", "/v1/messages", "/lodash/-/lodash-4.17.21.tgz", "/simple/requests/",
        "/repos/acme/widgets/pulls?state=open&per_page=100", "/search/code?q=token+org:acme", "/",
        "/packages/ab/cd/numpy-2.1.0-cp312-manylinux_x86_64.whl", "/github.com/stretchr/testify/@v/list",
        "/api/v1/crates/serde/1.0.210/download",
    ];

    private static readonly string[] Rules = ["llm-apis", "package-registries", "github-read", "default-deny", "no-secrets-out"];

    private readonly Random _random;

    public EventFactory(int seed)
    {
        _random = new Random(seed);
    }

    public AuditEvent Next(bool deny)
    {
        var host = Hosts[_random.Next(Hosts.Length)];
        var kind = _random.Next(20) == 0 ? AuditKinds.Connect : AuditKinds.Request;
        var finding = deny && _random.Next(3) == 0;
        var injects = !deny && host.StartsWith("api.", StringComparison.Ordinal);
        return new AuditEvent
        {
            Time = DateTimeOffset.UtcNow,
            Client = "agent-" + _random.Next(8),
            ClientAddress = "10.0.3." + _random.Next(2, 60),
            Kind = kind,
            Method = kind == AuditKinds.Connect ? "CONNECT" : (_random.Next(4) == 0 ? "POST" : "GET"),
            Scheme = "https",
            Host = host,
            Port = 443,
            Path = kind == AuditKinds.Connect ? null : Paths[_random.Next(Paths.Length)],
            Decision = deny ? (_random.Next(4) == 0 ? AuditDecisions.AuditDeny : AuditDecisions.Deny) : AuditDecisions.Allow,
            Rule = Rules[_random.Next(Rules.Length)],
            Reason = deny ? (finding ? "content finding: aws-access-key in body" : "no rule allows this host") : "allowed by rule",
            Findings = finding ? [new AuditFinding("aws-access-key", "body", "block")] : [],
            SecretsInjected = injects ? ["OPENAI_API_KEY"] : [],
            Status = deny ? 403 : 200,
            RequestBytes = _random.Next(200, 20_000),
            ResponseBytes = _random.Next(200, 200_000),
            DurationMs = _random.NextDouble() * 800,
        };
    }
}
