using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Policy;

/// <summary>
/// Evaluates a request URL against a policy the way the proxy's rules stage does (the CONNECT first for https, then
/// the request inside), through the same <see cref="PolicyDecider.Decide"/>, without any network access.
/// </summary>
public static class PolicyEvaluator
{
    public static PolicyEvaluation Evaluate(CompiledPolicy policy, string? clientId, string method, TargetUrl url, bool connectOnly = false)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(url);
        var host = HostNormalizer.NormalizeOrNull(url.Host) ?? url.Host;
        var path = PathNormalizer.Normalize(url.RawPath);

        PolicyEvaluation Result(Decision decision, string stage, TunnelMode? mode) =>
            new(decision.Verdict == Verdict.Allow, decision.Rule, decision.Reason.Name, stage, decision.Verdict == Verdict.Allow ? mode : null,
                decision.WebSocketAllowed, host, url.Port, path, decision.Verdict == Verdict.AuditDeny)
            { Decision = decision };

        if (policy.RequiresAuthentication && (clientId is null || policy.FindClient(clientId) is null))
        {
            return Result(Decision.Enforce("clients", Reasons.AuthRequired), "client", null);
        }

        if (!policy.RequiresAuthentication && clientId is not null)
        {
            clientId = null;
        }

        var tunnelled = url.Scheme is "https" or "wss";
        if (tunnelled || connectOnly)
        {
            var connect = PolicyDecider.Decide(policy, DecisionInput.Connect(clientId, url.Host, url.Port));
            if (connect.Verdict != Verdict.Allow || connectOnly || connect.TunnelMode != TunnelMode.Intercept)
            {
                return Result(connect, "connect", connect.TunnelMode);
            }
        }

        var request = PolicyDecider.Decide(policy, new DecisionInput(clientId, url.Scheme, url.Host, url.Port, method, url.RawPath));
        return Result(request, "request", tunnelled ? TunnelMode.Intercept : null);
    }
}
