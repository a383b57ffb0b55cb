namespace ProxyGuard.Policy.Decisions;

/// <summary>
/// What the rules see of a CONNECT or a request. <see cref="Method"/> is null for a CONNECT (only client, host and
/// port are known before TLS). Host and path are taken as sent: the decider normalises them.
/// </summary>
public sealed record DecisionInput(string? ClientId, string Scheme, string Host, int Port, string? Method = null, string? RawPath = null)
{
    /// <summary>True for a request that asks for a protocol upgrade (WebSocket).</summary>
    public bool Upgrade { get; init; }

    public bool IsConnect => Method is null;

    public static DecisionInput Connect(string? clientId, string host, int port) => new(clientId, "https", host, port);
}
