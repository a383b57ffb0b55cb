using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>First: nothing is forwarded while the audit store cannot record it.</summary>
internal sealed class AuditGateStage(AuditSink audit) : IRequestStage
{
    public ValueTask<Denial?> RunAsync(ProxyExchange exchange) =>
        ValueTask.FromResult(audit.Healthy
            ? null
            : exchange.Refuse(Denial.Of(Reasons.AuditUnavailable, "audit", "the audit store cannot record events, so nothing is forwarded")));
}
