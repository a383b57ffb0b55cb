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
    /// <summary>
    /// True when this secret may be substituted into a request that does not go over TLS verified by
    /// the proxy (plain <c>http://</c>). Default false: such a request is denied with
    /// <c>secret-plain-http</c>. Policy key <c>allow_plain_http</c>.
    /// </summary>
    public bool AllowPlainHttp { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"SecretBinding {{ Name = {Name}, Placeholder = {Placeholder}, Value = {SecretValue.Redacted}, InHeaders = {InHeaders}, InQuery = {InQuery}, InBody = {InBody}, AllowPlainHttp = {AllowPlainHttp} }}";
}
