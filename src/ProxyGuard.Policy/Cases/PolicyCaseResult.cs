namespace ProxyGuard.Policy;

/// <summary>What a case produced. <paramref name="Findings"/> and <paramref name="Secrets"/> are null when only the rules ran.</summary>
public sealed record PolicyCaseOutcome(
    bool Allowed, string Rule, string Reason, string Stage, TunnelMode? TunnelMode, bool WebSocketAllowed,
    IReadOnlyList<string>? Findings = null, IReadOnlyList<string>? Secrets = null)
{
    /// <summary>The budgets that would count the request (null when only the rules ran).</summary>
    public IReadOnlyList<string>? Budgets { get; init; }

    /// <summary>The decision in the events' and headers' words: <c>allow</c>, <c>deny</c> or <c>audit-deny</c>.</summary>
    public string Verdict { get; init; } = Allowed ? "allow" : "deny";

    public static PolicyCaseOutcome From(PolicyEvaluation evaluation)
    {
        ArgumentNullException.ThrowIfNull(evaluation);
        return new(evaluation.Allowed, evaluation.Rule, evaluation.Reason, evaluation.Stage, evaluation.TunnelMode, evaluation.WebSocketAllowed)
        {
            Verdict = evaluation.Allowed ? "allow" : evaluation.AuditOnly ? "audit-deny" : "deny",
        };
    }
}

/// <summary>The outcome of one case. <paramref name="Message"/> explains a failure (empty when passed).</summary>
public sealed record PolicyCaseResult(PolicyCase Case, bool Passed, PolicyCaseOutcome Actual, string Message)
{
    public override string ToString() => Passed
        ? $"PASS {Case.Name}"
        : $"FAIL {Case.Name} ({Case.File}:{Case.Line}:{Case.Column}): {Message}";
}
