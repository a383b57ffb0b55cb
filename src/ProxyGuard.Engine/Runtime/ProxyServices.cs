using Microsoft.Extensions.Logging;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.Engine.Network;

namespace ProxyGuard.Engine.Runtime;

/// <summary>The long-lived parts every connection and request uses.</summary>
internal sealed class ProxyServices
{
    public ProxyServices(
        PolicyRuntime runtime,
        LeafCertificateCache certificates,
        UpstreamConnector connector,
        AuditSink audit,
        ProxyMetrics metrics,
        ProxyLimits limits,
        ILoggerFactory loggerFactory)
    {
        Runtime = runtime;
        Certificates = certificates;
        Connector = connector;
        Audit = audit;
        Metrics = metrics;
        Limits = limits;
        LoggerFactory = loggerFactory;
        Connections = new ConnectionCounter(limits.MaxConnectionsPerClient);
        RequestsInFlight = new ConnectionCounter(limits.RequestsInFlightPerClient);
    }

    public PolicyRuntime Runtime { get; }

    public LeafCertificateCache Certificates { get; }

    public UpstreamConnector Connector { get; }

    public AuditSink Audit { get; }

    public ProxyMetrics Metrics { get; }

    public ProxyLimits Limits { get; }

    public ILoggerFactory LoggerFactory { get; }

    public ConnectionCounter Connections { get; }

    /// <summary>Forwarded requests in flight per client (<see cref="ProxyLimits.RequestsInFlightPerClient"/>).</summary>
    public ConnectionCounter RequestsInFlight { get; }

    /// <summary>Whether the proxy listener serves (the readiness probe reads it).</summary>
    public ServingState Serving { get; } = new();

    /// <summary>
    /// Identifies the client of a CONNECT or a plain request from its <c>Proxy-Authorization</c> value; returns the
    /// refusal (407) when the policy has clients and none matches.
    /// </summary>
    internal Forwarding.Denial? Identify(ProxySnapshot snapshot, string? proxyAuthorization, System.Net.IPAddress? remote, out string? clientId)
    {
        if (snapshot.TryIdentify(proxyAuthorization, remote, out clientId, out var throttled))
        {
            return null;
        }

        if (throttled)
        {
            return Forwarding.Denial.Of(Policy.Decisions.Reasons.AuthThrottled, "clients",
                "too many failed client authentications from this address; wait and retry");
        }

        return Forwarding.Denial.Of(Policy.Decisions.Reasons.AuthRequired, "clients",
            "the proxy requires a valid client token (Proxy-Authorization: Basic)");
    }

    /// <summary>The process-wide budgets (set by the host; null in unit tests that build a bare service set).</summary>
    public required ProcessBudgets Budgets { get; init; }

    /// <summary>Leaves for refused CONNECTs answered inside TLS; null: readable denials are off (refusals before TLS).</summary>
    public DenialCertificates? DenialCertificates { get; init; }

    /// <summary>The operator's time-boxed grants (set by the host; null in unit tests: no grants).</summary>
    public Grants.GrantRegistry? Grants { get; init; }

    /// <summary>The one rules decision with the active grants (<see cref="Policy.Decisions.PolicyDecider"/>).</summary>
    internal Policy.Decisions.Decision Decide(ProxySnapshot snapshot, Policy.Decisions.DecisionInput input) =>
        Grants is { } grants
            ? Policy.Decisions.PolicyDecider.Decide(snapshot.Policy, input, grants.Current, grants.Now)
            : Policy.Decisions.PolicyDecider.Decide(snapshot.Policy, input);

    /// <summary>The usage of the policy's budgets (null in unit tests that build a bare service set).</summary>
    public Budgets.BudgetLedger? Ledger { get; init; }

    /// <summary>The shared budget store's sync (null without <c>--budget-store</c>).</summary>
    public Budgets.BudgetSync? BudgetSync { get; init; }

    /// <summary>Records Kestrel's own parser refusals as audit events (set by the host).</summary>
    public Hosting.KestrelRefusalRecorder? Refusals { get; init; }
}
