namespace ProxyGuard.Inspection;

/// <summary>
/// A real secret value known to the vault. Detector <c>vault-secret</c> finds it raw, base64, base64url or
/// URL-encoded, anywhere. <see cref="ToString"/> never renders the value.
/// </summary>
public sealed record KnownSecret(string Name, string Value)
{
    public override string ToString() => $"KnownSecret {{ Name = {Name}, Value = *** }}";
}
