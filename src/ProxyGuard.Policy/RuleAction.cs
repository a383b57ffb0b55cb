namespace ProxyGuard.Policy;

/// <summary>What a rule (or the policy default) does with a matching request.</summary>
public enum RuleAction
{
    Allow,
    Deny,
}
