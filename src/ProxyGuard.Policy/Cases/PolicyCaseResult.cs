namespace ProxyGuard.Policy;

/// <summary>The outcome of one case. <paramref name="Message"/> explains a failure (empty when passed).</summary>
public sealed record PolicyCaseResult(PolicyCase Case, bool Passed, PolicyEvaluation Actual, string Message)
{
    public override string ToString() => Passed
        ? $"PASS {Case.Name}"
        : $"FAIL {Case.Name} ({Case.File}:{Case.Line}:{Case.Column}): {Message}";
}
