namespace ProxyGuard.Secrets;

/// <summary>Resolves a secret reference (<c>env:</c>, <c>file:</c>, <c>vault:</c>) to its value.</summary>
public interface ISecretProvider
{
    /// <exception cref="SecretUnavailableException">The reference cannot be resolved; the message says why.</exception>
    ValueTask<SecretValue> GetAsync(string reference, CancellationToken ct);

    /// <summary>
    /// Where previous values of rotated secrets are remembered across policy reloads (null: not
    /// remembered, e.g. offline <c>policy test</c>).
    /// </summary>
    SecretHistory? History => null;
}
