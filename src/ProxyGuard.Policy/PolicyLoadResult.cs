namespace ProxyGuard.Policy;

/// <summary>The outcome of loading a policy: either a compiled policy or the list of every problem found.</summary>
public sealed record PolicyLoadResult(CompiledPolicy? Policy, IReadOnlyList<PolicyDiagnostic> Diagnostics)
{
    public bool Success => Policy is not null;
}
