using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// First: a request goes on only with a reserved slot for its event in the audit queue, so nothing is forwarded
/// whose event could not be stored (the slot is kept even if the store starts failing while the request runs).
/// </summary>
internal sealed class AuditGateStage(AuditSink audit) : IRequestStage
{
    public ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        exchange.Reservation = audit.TryReserve();
        return ValueTask.FromResult(exchange.Reservation is not null
            ? null
            : exchange.Refuse(Denial.Of(Reasons.AuditUnavailable, "audit", "the audit store cannot record events, so nothing is forwarded")));
    }
}
