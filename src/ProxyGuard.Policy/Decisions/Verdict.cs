namespace ProxyGuard.Policy.Decisions;

/// <summary>What happens to a request or tunnel.</summary>
public enum Verdict
{
    /// <summary>Forwarded.</summary>
    Allow,

    /// <summary>Refused.</summary>
    Deny,

    /// <summary>Forwarded because the policy is in audit mode, although enforce mode would refuse it.</summary>
    AuditDeny,
}

/// <summary>The stage that produced a decision, in the order the proxy runs them.</summary>
public enum DecisionStage
{
    Protocol,
    Target,
    Client,
    Rules,
    Content,
    Secrets,
    Budgets,
    Network,
    Limits,
    Audit,
    Upstream,
}

/// <summary>Wire names of <see cref="Verdict"/> and <see cref="DecisionStage"/> (headers, events, metrics, CLI).</summary>
public static class DecisionNames
{
    public static string Of(Verdict verdict) => verdict switch
    {
        Verdict.Allow => "allow",
        Verdict.AuditDeny => "audit-deny",
        _ => "deny",
    };

    public static string Of(DecisionStage stage) => stage switch
    {
        DecisionStage.Protocol => "protocol",
        DecisionStage.Target => "target",
        DecisionStage.Client => "client",
        DecisionStage.Rules => "rules",
        DecisionStage.Content => "content",
        DecisionStage.Secrets => "secrets",
        DecisionStage.Budgets => "budgets",
        DecisionStage.Network => "network",
        DecisionStage.Limits => "limits",
        DecisionStage.Audit => "audit",
        _ => "upstream",
    };
}
