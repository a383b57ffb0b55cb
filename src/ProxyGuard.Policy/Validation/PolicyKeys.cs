namespace ProxyGuard.Policy.Validation;

/// <summary>The keys allowed at each level of the policy file (also checked against the JSON Schema by tests).</summary>
internal static class PolicyKeys
{
    public static readonly string[] Top = ["version", "mode", "default", "clients", "network", "rules", "content", "secrets", "tls", "budgets"];
    public static readonly string[] Client = ["id", "token", "networks"];
    public static readonly string[] Network = ["allow_destinations"];
    public static readonly string[] Rule = ["name", "clients", "hosts", "ports", "methods", "paths", "action", "inspect", "websocket", "protocol"];
    public static readonly string[] Content = ["builtin", "scan", "max_body", "over_limit", "rules", "exempt"];
    public static readonly string[] ContentRule = ["name", "pattern", "action", "hosts"];
    public static readonly string[] Exemption = ["detectors", "hosts"];
    public static readonly string[] Secret = ["name", "value", "placeholder", "sandbox_env", "hosts", "in", "allow_plain_http"];
    public static readonly string[] Tls = ["upstream_ca_files"];
    public static readonly string[] Budget = ["name", "match", "per", "requests", "upload_bytes"];
    public static readonly string[] BudgetMatch = ["hosts", "clients", "rule"];
}
