namespace ProxyGuard.Policy;

/// <summary>Evaluates a request URL against a policy the way the proxy would (steps 1, 2 and 4 of SPEC 4.1), without any network access.</summary>
public static class PolicyEvaluator
{
    public static PolicyEvaluation Evaluate(CompiledPolicy policy, string? clientId, string method, TargetUrl url, bool connectOnly = false)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(url);
        var host = HostNormalizer.NormalizeOrNull(url.Host) ?? url.Host;
        var path = PathNormalizer.Normalize(url.RawPath);

        PolicyEvaluation Result(bool allowed, string rule, string reason, string stage, TunnelMode? mode, bool webSocket) =>
            new(allowed, rule, reason, stage, mode, webSocket, host, url.Port, path, !allowed && policy.Mode == PolicyMode.Audit);

        if (policy.RequiresAuthentication && (clientId is null || policy.FindClient(clientId) is null))
        {
            return Result(false, CompiledPolicy.DefaultRuleName, clientId is null ? "authentication-required" : "unknown-client", "client", null, false);
        }

        if (!policy.RequiresAuthentication && clientId is not null)
        {
            clientId = null;
        }

        var tunnelled = url.Scheme is "https" or "wss";
        if (tunnelled || connectOnly)
        {
            var connect = policy.DecideConnect(clientId, url.Host, url.Port);
            if (!connect.Allowed || connectOnly || connect.Mode != TunnelMode.Intercept)
            {
                return Result(connect.Allowed, connect.Rule, connect.Reason, "connect", connect.Allowed ? connect.Mode : null, false);
            }
        }

        var request = policy.DecideRequest(clientId, url.Scheme, url.Host, url.Port, method, url.RawPath);
        return Result(request.Allowed, request.Rule, request.Reason, "request", tunnelled ? TunnelMode.Intercept : null, request.WebSocketAllowed);
    }
}
