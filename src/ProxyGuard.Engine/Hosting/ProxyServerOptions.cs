using System.Net;
using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Hosting;

/// <summary>How <c>proxyguard run</c> was asked to run.</summary>
internal sealed record ProxyServerOptions
{
    public string PolicyPath { get; init; } = "policies/default.yaml";

    /// <summary>The policy as <c>run</c> already validated it at start: the first load uses it instead of compiling the file again.</summary>
    public ProxyGuard.Policy.CompiledPolicy? ValidatedPolicy { get; init; }

    /// <summary><c>ADDR:PORT</c> or <c>unix:/path.sock</c>. Port 0 picks a free port.</summary>
    public string Listen { get; init; } = "127.0.0.1:8080";

    public string Admin { get; init; } = "127.0.0.1:9090";

    public string CaDirectory { get; init; } = "certs-dev";

    public string DataDirectory { get; init; } = ".proxyguard";

    public IReadOnlyDictionary<string, IPAddress> Resolve { get; init; } = new Dictionary<string, IPAddress>();

    public ProxyLimits Limits { get; init; } = new();

    /// <summary>Admin token; when null, <c>PROXYGUARD_ADMIN_TOKEN</c> or a generated token file.</summary>
    public string? AdminToken { get; init; }

    public bool JsonLogs { get; init; }

    /// <summary>Audit store settings (retention by age, count and size).</summary>
    public ProxyGuard.Audit.EventStoreOptions Events { get; init; } = new();

    public bool WatchPolicyFile { get; init; } = true;

    /// <summary>The OTLP collector's base URL (<c>--otlp-endpoint</c>); null: no OTLP export.</summary>
    public Uri? OtlpEndpoint { get; init; }
    /// <summary>Answer a CONNECT the policy refuses inside TLS, so clients can read the explanation (docs/operations.md).</summary>
    public bool ReadableDenials { get; init; }

    /// <summary>
    /// The central event store (PostgreSQL) events are shipped to and read from; null: the local store only. Built by
    /// the caller from the URL and the replica id; <see cref="Events"/> then carries the outbox bound.
    /// </summary>
    public Func<string, ProxyGuard.Audit.Central.CentralStoreOptions>? Central { get; init; }

    /// <summary>PostgreSQL URL of the shared budget store (<c>--budget-store</c>); null: budgets are per process.</summary>
    public string? BudgetStore { get; init; }

    /// <summary>How often budget usage is exchanged with the shared store.</summary>
    public TimeSpan BudgetSyncInterval { get; init; } = TimeSpan.FromMilliseconds(250);
}
