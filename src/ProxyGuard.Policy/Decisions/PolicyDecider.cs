namespace ProxyGuard.Policy.Decisions;

/// <summary>
/// The one rules decision, pure (no I/O): the proxy's CONNECT layer, its request path, <c>policy explain</c> and
/// <c>policy test</c> all call <see cref="Decide"/>. Content, secret and network checks are later stages that add
/// their own decisions; nothing rewrites this one. Operator grants (<see cref="Grants.GrantSet"/>) are part of this one
/// decision: where the policy refuses only by its default, an active grant that covers the input allows it, with the
/// grant's rule name (<c>grant:ID</c>) and reason <c>grant-allow</c>; a deny rule is never lifted by a grant.
/// </summary>
public static class PolicyDecider
{
    public static Decision Decide(CompiledPolicy policy, DecisionInput input) => Decide(policy, input, null, default);

    /// <summary>The decision with the active <paramref name="grants"/> at <paramref name="now"/> (null: none).</summary>
    public static Decision Decide(CompiledPolicy policy, DecisionInput input, Grants.GrantSet? grants, DateTimeOffset now)
    {
        var decision = DecidePolicy(policy, input);
        if (decision.Verdict == Verdict.Allow || grants is null
            || (decision.Reason != Reasons.NoRuleMatched && decision.Reason != Reasons.NoRuleAllowsHostPort)
            || grants.Match(input, now) is not { } grant)
        {
            return decision;
        }

        if (input.Upgrade)
        {
            return Decision.Refuse(grant.RuleName, Reasons.WebSocketNotAllowed, policy.Mode);
        }

        return Decision.Allow(grant.RuleName, Reasons.GrantAllow, DecisionStage.Rules, policy.Mode);
    }

    private static Decision DecidePolicy(CompiledPolicy policy, DecisionInput input)
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
