using System.Diagnostics;
using System.Net;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Auditing;

/// <summary>
/// The one place audit events are built. It is fed only what the sandbox sent (the request view, the CONNECT head),
/// never the substituted request, and every sandbox-shaped field goes through <see cref="EventRedactor"/>: no
/// placeholder, real secret value, query value, user information or control character reaches the store or a log.
/// </summary>
internal static class AuditEventFactory
{
    /// <summary>The event of one HTTP request (inside a tunnel or plain).</summary>
    public static AuditEvent Request(ProxyExchange exchange, Decision decision, int status)
    {
        var redactor = new EventRedactor(exchange.Snapshot);
        var tunnel = exchange.Connection?.Tunnel;
        var has = exchange.HasView;
        var view = has ? exchange.View : null;
        var target = view?.Target;
        var flagged = exchange.Findings.Select(f => f.Location).ToHashSet(StringComparer.Ordinal);
        return new AuditEvent
        {
            Time = DateTimeOffset.UtcNow,
            Client = view?.ClientId ?? tunnel?.ClientId,
            ClientAddress = exchange.Connection?.RemoteAddress?.ToString(),
            Kind = AuditKinds.Request,
            Method = redactor.Method(view?.Method ?? exchange.Http?.Request.Method, flagged.Contains("method")),
            Scheme = target?.Scheme ?? (tunnel is null ? "http" : "https"),
            Host = target is not null ? redactor.Host(target.Host, exchange.HostCarriesCredential) : tunnel?.Host ?? string.Empty,
            Port = target?.Port ?? tunnel?.Port ?? 0,
            Path = target is null ? null : redactor.Path(target.RawPath, target.RawQuery, flagged.Contains("path") || flagged.Contains("query")),
            Decision = decision.VerdictName,
            Rule = decision.Rule,
            Reason = decision.Reason.Name,
            Findings = exchange.Findings,
            SecretsInjected = decision.Verdict == Verdict.Deny ? [] : exchange.Injected,
            Status = status,
            RequestBytes = exchange.RequestBytes,
            ResponseBytes = exchange.ResponseBytes,
            DurationMs = Stopwatch.GetElapsedTime(exchange.Started).TotalMilliseconds,
        };
    }

    /// <summary>
    /// The event of a CONNECT (allowed or refused) or of a tunnel outcome. <paramref name="host"/> is what the head
    /// named: normalised when it could be, raw otherwise (then it is sanitised and checked like any sandbox text).
    /// </summary>
    public static AuditEvent Connect(
        ProxySnapshot? snapshot, IPAddress? remote, string? clientId, string host, int port, Decision decision, int? status, long started,
        string kind = AuditKinds.Connect, bool hostCarriesCredential = false)
    {
        var redactor = new EventRedactor(snapshot);
        return new AuditEvent
        {
            Time = DateTimeOffset.UtcNow,
            Client = clientId,
            ClientAddress = remote?.ToString(),
            Kind = kind,
            Method = "CONNECT",

            // The host as the head named it may not have been scanned yet (a 407 or a bad host): scan it here.
            Host = redactor.Host(host, hostCarriesCredential || redactor.FlaggedHost(host)),
            Port = port,
            Decision = decision.VerdictName,
            Rule = decision.Rule,
            Reason = decision.Reason.Name,
            Status = status,
            DurationMs = started == 0 ? 0 : Stopwatch.GetElapsedTime(started).TotalMilliseconds,
        };
    }

    /// <summary>The event of a tunnel's outcome (pass-through or TCP tunnels, not-TLS refusals).</summary>
    public static AuditEvent Tunnel(ProxySnapshot? snapshot, ProxyConnectionFeature feature, TunnelTarget tunnel, Decision decision, int? status, long started) =>
        Connect(snapshot, feature.RemoteAddress, tunnel.ClientId, tunnel.Host, tunnel.Port, decision, status, started, AuditKinds.Tunnel);
}
