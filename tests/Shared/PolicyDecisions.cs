using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Tests.Shared;

/// <summary>The rules decision as the tests compare it (reason as its wire name).</summary>
public sealed record RequestDecision(bool Allowed, string Rule, string Reason, bool WebSocketAllowed);

/// <summary>The CONNECT decision as the tests compare it.</summary>
public sealed record ConnectDecision(bool Allowed, string Rule, string Reason, TunnelMode Mode);

/// <summary>Test shorthand over <see cref="PolicyDecider.Decide"/>, the one decision function.</summary>
public static class PolicyDecisions
{
    public static RequestDecision DecideRequest(this CompiledPolicy policy, string? clientId, string scheme, string host, int port, string method, string rawPath)
    {
        var d = PolicyDecider.Decide(policy, new DecisionInput(clientId, scheme, host, port, method, rawPath));
        return new RequestDecision(d.Verdict == Verdict.Allow, d.Rule, d.Reason.Name, d.WebSocketAllowed);
    }

    public static ConnectDecision DecideConnect(this CompiledPolicy policy, string? clientId, string host, int port)
    {
        var d = PolicyDecider.Decide(policy, DecisionInput.Connect(clientId, host, port));
        return new ConnectDecision(d.Verdict == Verdict.Allow, d.Rule, d.Reason.Name, d.TunnelMode);
    }
}
