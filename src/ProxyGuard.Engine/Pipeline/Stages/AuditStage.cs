using ProxyGuard.Engine.Auditing;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>Last: the request's one event (built by <see cref="AuditEventFactory"/>) and its metrics.</summary>
internal sealed class AuditStage(ProxyServices services)
{
    /// <summary>
    /// The decision the event records: a refusal as made; otherwise audit mode's would-be refusal if there was one
    /// (whatever the upstream did), else the rules' allow with any note (an upstream failure, an unscanned body).
    /// </summary>
    public static Decision Final(ProxyExchange exchange, Decision? refusal)
    {
        if (refusal is not null && refusal.Verdict == Verdict.Deny && !IsUpstreamFailure(refusal))
        {
            return refusal;
        }

        if (exchange.AuditDeny is { } auditDeny)
        {
            return auditDeny;
        }

        var allowed = exchange.Decision is { Verdict: Verdict.Allow } rules
            ? rules
            : Decision.Allow("default", Reasons.DefaultAllow, DecisionStage.Rules, exchange.Snapshot.Policy.Mode);
        var note = refusal?.Reason ?? exchange.Note;
        return note is null ? allowed : allowed with { Reason = note };
    }

    /// <summary>A failure after the policy allowed the request: the upstream (or its name) failed, not the policy.</summary>
    public static bool IsUpstreamFailure(Decision decision) =>
        decision.Stage == DecisionStage.Upstream || decision.Reason == Reasons.DnsFailure;

    public async ValueTask<bool> RecordAsync(ProxyExchange exchange, Decision decision, int status)
    {
        exchange.Recorded = true; // once: a failure after this point does not record the request again
        services.Metrics.CountRequest(decision);
        var e = AuditEventFactory.Request(exchange, decision, status);
        if (exchange.Reservation is { } reservation)
        {
            exchange.Reservation = null;
            return services.Audit.Record(e, reservation);
        }

        return await services.Audit.RecordAsync(e);
    }
}
