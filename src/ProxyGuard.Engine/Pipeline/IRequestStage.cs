using ProxyGuard.Engine.Forwarding;

namespace ProxyGuard.Engine.Pipeline;

/// <summary>
/// One step of the request path. A stage either lets the request go on (null) or ends it with a denial; in audit
/// mode an auditable refusal is recorded on the exchange and the request goes on (<see cref="ProxyExchange.Refuse"/>).
/// </summary>
internal interface IRequestStage
{
    ValueTask<Denial?> RunAsync(ProxyExchange exchange);
}
