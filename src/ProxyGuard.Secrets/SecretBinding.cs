namespace ProxyGuard.Secrets;

/// <summary>
/// One secret as the substitutor uses it: its name, the placeholder the sandbox holds, the real value,
/// the hosts it may go to (canonical host match, supplied by the policy) and where it may be substituted.
/// Renders itself without the value.
/// </summary>
public sealed record SecretBinding(
    string Name,
    string Placeholder,
    SecretValue Value,
    Func<string, bool> AppliesToHost,
    bool InHeaders,
    bool InQuery,
    bool InBody)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"SecretBinding {{ Name = {Name}, Placeholder = {Placeholder}, Value = {SecretValue.Redacted}, InHeaders = {InHeaders}, InQuery = {InQuery}, InBody = {InBody} }}";
}
