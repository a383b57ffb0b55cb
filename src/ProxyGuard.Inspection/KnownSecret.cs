namespace ProxyGuard.Inspection;

/// <summary>
/// A real secret value known to the vault. Detector <c>vault-secret</c> finds it anywhere, in every form the shared
/// real-value matcher knows (raw, base64/base64url, URL, JSON, HTML and quoted-printable escapes, two levels). <see cref="ToString"/> never renders the value.
/// </summary>
public sealed record KnownSecret(string Name, string Value)
{
    public override string ToString() => $"KnownSecret {{ Name = {Name}, Value = *** }}";
}
