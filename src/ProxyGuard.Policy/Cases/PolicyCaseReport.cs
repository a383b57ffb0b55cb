namespace ProxyGuard.Policy;

/// <summary>The outcome of a cases file: per-case results, or the file's parse/validation problems.</summary>
public sealed record PolicyCaseReport(IReadOnlyList<PolicyCaseResult> Results, IReadOnlyList<PolicyDiagnostic> Diagnostics)
{
    public int Passed => Results.Count(r => r.Passed);

    public int Failed => Results.Count(r => !r.Passed);

    /// <summary>True when the file is valid and every case passed.</summary>
    public bool Success => Diagnostics.Count == 0 && Failed == 0;

    /// <summary><c>N passed, N failed</c>.</summary>
    public string Summary => $"{Passed} passed, {Failed} failed";
}
