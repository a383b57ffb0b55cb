namespace ProxyGuard.Inspection;

/// <summary>What a content rule does when it matches.</summary>
public enum ContentAction
{
    Deny,
    Redact,
    Log,
}
