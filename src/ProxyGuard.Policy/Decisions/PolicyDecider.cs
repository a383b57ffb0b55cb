namespace ProxyGuard.Policy.Decisions;

/// <summary>
/// The one rules decision, pure (no I/O): the proxy's CONNECT layer, its request path, <c>policy explain</c> and
/// <c>policy test</c> all call <see cref="Decide"/>. Content, secret and network checks are later stages that add
/// their own decisions; nothing rewrites this one.
/// </summary>
public static class PolicyDecider
{
    public static Decision Decide(CompiledPolicy policy, DecisionInput input)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(input);
        var mode = policy.Mode;
        if (input.IsConnect)
        {
            var connect = policy.MatchConnect(input.ClientId, input.Host, input.Port);
            return connect.Allowed
                ? Decision.Allow(connect.Rule, connect.Reason, DecisionStage.Rules, mode) with { TunnelMode = connect.Mode }
                : Decision.Refuse(connect.Rule, connect.Reason, mode);
        }

        var request = policy.MatchRequest(input.ClientId, input.Scheme, input.Host, input.Port, input.Method!, input.RawPath ?? "/");
        if (!request.Allowed)
        {
            return Decision.Refuse(request.Rule, request.Reason, mode);
        }

        if (input.Upgrade && !request.WebSocket)
        {
            return Decision.Refuse(request.Rule, Reasons.WebSocketNotAllowed, mode);
        }

        return Decision.Allow(request.Rule, request.Reason, DecisionStage.Rules, mode) with { WebSocketAllowed = request.WebSocket };
    }
}
