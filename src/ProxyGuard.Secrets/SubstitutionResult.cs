namespace ProxyGuard.Secrets;

/// <summary>
/// Outcome of a substitution. <see cref="Value"/> may hold real secret values (when
/// <see cref="Injected"/> is not empty): send it upstream, never log it. On misuse, <see cref="Value"/>
/// is the input unchanged and nothing was substituted: the engine denies with <c>secret-misuse</c>.
/// </summary>
public sealed record SubstitutionResult(string Value, IReadOnlyList<string> Injected, string? MisusedSecret)
{
    internal static readonly IReadOnlyList<string> None = Array.Empty<string>();

    public bool IsMisuse => MisusedSecret is not null;

    /// <summary>True when at least one placeholder was replaced by its real value.</summary>
    public bool Changed => Injected.Count > 0;

    internal static SubstitutionResult Unchanged(string value) => new(value, None, null);

    internal static SubstitutionResult Misuse(string value, string name) => new(value, None, name);

    /// <inheritdoc />
    public override string ToString() =>
        $"SubstitutionResult {{ Value = {(Injected.Count > 0 ? SecretValue.Redacted : Value)}, Injected = [{string.Join(", ", Injected)}], MisusedSecret = {MisusedSecret} }}";
}
