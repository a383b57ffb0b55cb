using System.Net;
using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Runtime;

/// <summary>A client from the policy with its resolved token (null when the reference did not resolve: that client cannot log in).</summary>
internal sealed record ClientCredential(string Id, SecretValue? Token, IReadOnlyList<IPNetwork> Networks, string? Problem)
{
    public override string ToString() => $"ClientCredential {{ Id = {Id}, Token = [REDACTED] }}";
}
