using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>The policy's rules, through the one decision function (<see cref="PolicyDecider"/>).</summary>
internal sealed class RulesStage(ProxyServices services) : IRequestStage
{
    public ValueTask<Denial?> RunAsync(ProxyExchange exchange) => ValueTask.FromResult(Run(services, exchange));

    /// <summary>The rules without operator grants (unit tests).</summary>
    public static Denial? Run(ProxyExchange exchange) => Run(null, exchange);

    public static Denial? Run(ProxyServices? services, ProxyExchange exchange)
    {
        var view = exchange.View;
        var target = view.Target;
        var input = new DecisionInput(view.ClientId, target.Scheme, target.Host, target.Port, view.Method, target.RawPath) { Upgrade = view.Upgrade };
        var decision = services is null ? PolicyDecider.Decide(exchange.Snapshot.Policy, input) : services.Decide(exchange.Snapshot, input);
        exchange.Decision = decision;
        if (decision.Verdict == Verdict.Allow)
        {
            return null;
        }

        var message = decision.Reason == Reasons.WebSocketNotAllowed
            ? "protocol upgrades (WebSocket) are not enabled for this rule (websocket: true)"
            : $"{view.Method} {target.Scheme}://{target.Authority}{target.RawPath} is not allowed by the policy";
        return exchange.Refuse(new Denial(decision, message)
        {
            GrantHint = Denial.GrantCommand(decision, view.ClientId, target.Host, target.Port, target.Scheme, view.Method),
        });
    }
}
