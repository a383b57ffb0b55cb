namespace ProxyGuard.Policy;

/// <summary>What a content rule does when its pattern matches.</summary>
public enum ContentRuleAction
{
    Deny,
    Redact,
    Log,
}
