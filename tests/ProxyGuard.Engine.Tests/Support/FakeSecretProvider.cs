using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Tests.Support;

/// <summary>Resolves <c>env:NAME</c> references from an in-memory table; anything else is unavailable.</summary>
internal sealed class FakeSecretProvider(IReadOnlyDictionary<string, string> values) : ISecretProvider
{
    public List<string> Requested { get; } = [];

    public ValueTask<SecretValue> GetAsync(string reference, CancellationToken ct)
    {
        Requested.Add(reference);
        if (reference.StartsWith("env:", StringComparison.Ordinal) && values.TryGetValue(reference[4..], out var value))
        {
            return ValueTask.FromResult(new SecretValue(value));
        }

        throw new SecretUnavailableException(reference, "not set in the fake provider");
    }
}
