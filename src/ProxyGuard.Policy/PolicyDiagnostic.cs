namespace ProxyGuard.Policy;

/// <summary>One problem found while loading a policy (or a cases file). Line and column are 1-based.</summary>
public sealed record PolicyDiagnostic(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}
