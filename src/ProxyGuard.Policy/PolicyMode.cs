namespace ProxyGuard.Policy;

/// <summary>How decisions are applied: <c>enforce</c> blocks, <c>audit</c> only records would-be denials.</summary>
public enum PolicyMode
{
    Enforce,
    Audit,
}
