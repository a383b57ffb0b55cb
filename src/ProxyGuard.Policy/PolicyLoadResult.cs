namespace ProxyGuard.Policy;

/// <summary>The outcome of loading a policy: either a compiled policy or the list of every problem found.</summary>
public sealed record PolicyLoadResult(CompiledPolicy? Policy, IReadOnlyList<PolicyDiagnostic> Diagnostics)
{
    public bool Success => Policy is not null;

    /// <summary>
    /// What is valid but probably not meant (a path glob that reads like a regex, a secret bound to hosts no rule
    /// allows), each as <c>FILE:LINE:COL: warning: ...</c>. Warnings never fail a load.
    /// </summary>
    public IReadOnlyList<PolicyDiagnostic> Warnings { get; init; } = [];

    /// <summary>The <c>tls</c> section as read, kept when the policy has problems so that <see cref="PolicyLoader.Validate"/> reports its files too.</summary>
    internal TlsSpec? ReadTls { get; init; }
}
