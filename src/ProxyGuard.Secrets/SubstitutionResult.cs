namespace ProxyGuard.Secrets;

/// <summary>The reasons a substitution is refused (the request is denied, nothing is forwarded).</summary>
public static class SubstitutionReasons
{
    /// <summary>A placeholder toward a host its secret is not bound to, or in a part of the request its <c>in</c> does not list.</summary>
    public const string SecretMisuse = "secret-misuse";

    /// <summary>A placeholder toward a bound host in a name position (header, query parameter, cookie, form or multipart field name, JSON key, multipart file name) or a position that is never substituted (method, path, host, fragment).</summary>
    public const string PlaceholderPosition = "placeholder-position";

    /// <summary>A placeholder toward a bound host over plain HTTP (not TLS verified by the proxy) for a secret without <c>allow_plain_http</c>.</summary>
    public const string PlainHttp = "secret-plain-http";
}

/// <summary>Where a request goes: its canonical host and whether it travels over TLS the proxy verified.</summary>
/// <param name="Host">Canonical host name of the destination.</param>
/// <param name="VerifiedTls">True for an intercepted HTTPS request whose upstream certificate the proxy verifies; false for plain <c>http://</c>.</param>
public readonly record struct SubstitutionTarget(string Host, bool VerifiedTls);

/// <summary>
/// Outcome of a substitution. <see cref="Value"/> may hold real secret values (when
/// <see cref="Injected"/> is not empty): send it upstream, never log it. On misuse, <see cref="Value"/>
/// is the input unchanged and nothing was substituted: the engine denies with <see cref="Reason"/>.
/// </summary>
public sealed record SubstitutionResult(string Value, IReadOnlyList<string> Injected, string? MisusedSecret)
{
    internal static readonly IReadOnlyList<string> None = Array.Empty<string>();

    public bool IsMisuse => MisusedSecret is not null;

    /// <summary>
    /// On misuse, why: <see cref="SubstitutionReasons.SecretMisuse"/>,
    /// <see cref="SubstitutionReasons.PlaceholderPosition"/> or <see cref="SubstitutionReasons.PlainHttp"/>; otherwise null.
    /// </summary>
    public string? Reason { get; init; }

    /// <summary>True when at least one placeholder was replaced by its real value.</summary>
    public bool Changed => Injected.Count > 0;

    internal static SubstitutionResult Unchanged(string value) => new(value, None, null);

    internal static SubstitutionResult Misuse(string value, string name, string reason = SubstitutionReasons.SecretMisuse) =>
        new(value, None, name) { Reason = reason };

    /// <inheritdoc />
    public override string ToString() =>
        $"SubstitutionResult {{ Value = {(Injected.Count > 0 ? SecretValue.Redacted : Value)}, Injected = [{string.Join(", ", Injected)}], MisusedSecret = {MisusedSecret}, Reason = {Reason} }}";
}
