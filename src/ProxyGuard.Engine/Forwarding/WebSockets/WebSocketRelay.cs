using ProxyGuard.Inspection.Budgets;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Inspection;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Forwarding.WebSockets;

/// <summary>
/// Decides and scrubs the frames of one upgraded (WebSocket) connection. The forwarder relays an upgrade as two byte
/// copies over the client's upgraded stream; the relay hands it a wrapped stream instead (by decorating the upgrade
/// and extended-CONNECT features), so that every byte the client sends is read through a frame filter and every byte
/// the upstream sends is written through another.
/// Client to upstream: each message is reassembled (bounded by <c>content.max_body</c> and the process budget),
/// content-scanned like a request body, checked for real secret values and placeholders (never substituted in
/// frames), then re-framed and masked with a fresh key. A refusal closes the client with 1008 and the upstream with
/// 1008, and is recorded on the request's event.
/// Upstream to client: each message and control frame is scrubbed of real secret values and re-framed.
/// </summary>
internal sealed class WebSocketRelay
{
    private readonly ProxyExchange _exchange;
    private readonly ProxyMetrics? _metrics;
    private readonly ResourceBudget _budget;
    private readonly long _maxMessage;

    public WebSocketRelay(ProxyExchange exchange, ProxyMetrics? metrics, ResourceBudget budget, TimeSpan? idleTimeout = null, TimeSpan? maxLifetime = null)
    {
        _exchange = exchange;
        _metrics = metrics;
        _budget = budget;
        _maxMessage = exchange.Snapshot.Policy.Content.MaxBody;
        IdleTimeout = idleTimeout ?? new ProxyLimits().WebSocketIdleTimeout;
        MaxLifetime = maxLifetime ?? new ProxyLimits().WebSocketMaxLifetime;
    }

    /// <summary>How long no frame may move either way before the proxy closes both sides (1001).</summary>
    public TimeSpan IdleTimeout { get; }

    /// <summary>How long the WebSocket may live at most before the proxy closes both sides (1001).</summary>
    public TimeSpan MaxLifetime { get; }

    /// <summary>The request's upload budgets, counting the client's frames (null: none apply).</summary>
    public Budgets.StreamedUpload? Upload => _exchange.Upload;

    /// <summary>Why the proxy closed an idle or too old WebSocket (a note on the event), if it did.</summary>
    public WebSocketStop? TimeoutStop { get; internal set; }

    /// <summary>Why the client's side was stopped (a refusal the request's event records), if it was.</summary>
    public WebSocketStop? ClientStop { get; internal set; }

    /// <summary>Why the upstream's side was stopped (an upstream failure: a note on the event), if it was.</summary>
    public WebSocketStop? UpstreamStop { get; internal set; }

    public long ClientBytes { get; internal set; }

    public long UpstreamBytes { get; internal set; }

    /// <summary>Decorates the upgrade features of <paramref name="context"/> so the forwarder relays through the filters.</summary>
    public void Install(HttpContext context)
    {
        if (context.Features.Get<IHttpUpgradeFeature>() is { } upgrade)
        {
            context.Features.Set<IHttpUpgradeFeature>(new UpgradeFeature(upgrade, this));
        }

        if (context.Features.Get<IHttpExtendedConnectFeature>() is { } connect)
        {
            context.Features.Set<IHttpExtendedConnectFeature>(new ExtendedConnectFeature(connect, this));
        }
    }

    /// <summary>
    /// True once the client's side was switched to the WebSocket stream (101 over HTTP/1.1, 200 to an HTTP/2 extended
    /// CONNECT): from then on nothing may be written to the response.
    /// </summary>
    public bool Accepted { get; private set; }

    internal Stream Wrap(Stream client)
    {
        Accepted = true;
        return WrapStream(client);
    }

    private WebSocketRelayStream WrapStream(Stream client) => new(client, this,
        new WebSocketFrameFilter(fromClient: true, _maxMessage, _budget, InspectFromClient),
        new WebSocketFrameFilter(fromClient: false, _maxMessage, _budget, InspectFromUpstream));

    /// <summary>The checks the content, secret-gate and substitution stages make on a request body, for one message.</summary>
    private WebSocketVerdict InspectFromClient(int opcode, ReadOnlyMemory<byte> payload)
    {
        if (opcode == WebSocketCodes.Close)
        {
            payload = payload.Length > 2 ? payload[2..] : ReadOnlyMemory<byte>.Empty;
        }

        if (payload.IsEmpty)
        {
            return WebSocketVerdict.Forward;
        }

        var snapshot = _exchange.Snapshot;
        byte[]? replacement = null;
        if (snapshot.Scanner is { } scanner && snapshot.Policy.Content.ScanBody)
        {
            var result = scanner.ScanBody(payload, null, null, _exchange.View.Target.Host, _exchange.Aborted);
            if (Check(result) is { } stop)
            {
                return new WebSocketVerdict(stop, null);
            }

            if (result.RewrittenBody is { } rewritten && opcode is WebSocketCodes.Text or WebSocketCodes.Binary)
            {
                replacement = rewritten;
                payload = rewritten;
            }
        }

        var substitutor = snapshot.Substitutor;
        if (!substitutor.IsEmpty)
        {
            if (substitutor.FindRealValue(payload.Span) is { } leaked)
            {
                return new WebSocketVerdict(new WebSocketStop(WebSocketCodes.PolicyViolation, Reasons.SecretRealValue,
                    $"a WebSocket message carries the real value of secret '{leaked}'; the sandbox must only ever hold its placeholder", "secrets"), null);
            }

            if (substitutor.FindPlaceholderAnywhere(payload.Span) is { } placeholder)
            {
                return new WebSocketVerdict(new WebSocketStop(WebSocketCodes.PolicyViolation, Reasons.SecretMisuse,
                    $"a WebSocket message carries the placeholder of secret '{placeholder}'; placeholders are never substituted in WebSocket messages", "secrets"), null);
            }
        }

        return new WebSocketVerdict(null, replacement);
    }

    /// <summary>Records the findings of one message's scan; the stop it calls for (none in audit mode or when clean).</summary>
    private WebSocketStop? Check(ScanResult result)
    {
        if (result.Findings.Count == 0 && !result.Blocked)
        {
            return null;
        }

        foreach (var finding in result.Findings)
        {
            var action = ContentChecks.ActionName(finding.Action);
            _exchange.Findings.Add(new Audit.AuditFinding(finding.Detector, "websocket", action));
            _metrics?.Findings.WithLabels(finding.Detector, action).Inc();
        }

        if (!result.Blocked)
        {
            return null;
        }

        var mode = _exchange.Snapshot.Policy.Mode;
        if (result.ErrorKind == ScanErrorKind.BudgetExceeded)
        {
            return new WebSocketStop(WebSocketCodes.PolicyViolation, Reasons.ScanBudgetExceeded,
                "scanning a WebSocket message took longer than the scan budget, so it cannot be forwarded unscanned", "content");
        }

        if (result.ErrorKind == ScanErrorKind.Canceled)
        {
            return new WebSocketStop(WebSocketCodes.PolicyViolation, Reasons.ClientCanceled, "the client went away while its message was scanned", "content");
        }

        var (rule, reason, message) = result.Error is not null
            ? ("content", Reasons.Undecodable, $"a WebSocket message could not be decoded for scanning: {result.Error}")
            : (result.Findings.First(f => f.Action == ContentAction.Deny).Detector, Reasons.ContentFinding,
                $"a WebSocket message contains what looks like a credential (detector {result.Findings.First(f => f.Action == ContentAction.Deny).Detector})");
        var decision = Decision.Refuse(rule, reason, mode);
        if (decision.Verdict == Verdict.AuditDeny)
        {
            // Audit mode: recorded as the would-be refusal, the message goes on.
            _exchange.AuditDeny ??= decision;
            return null;
        }

        return new WebSocketStop(WebSocketCodes.PolicyViolation, reason, message, rule);
    }

    /// <summary>Every real secret value (all its forms) in a message or control frame becomes its placeholder.</summary>
    private WebSocketVerdict InspectFromUpstream(int opcode, ReadOnlyMemory<byte> payload)
    {
        var substitutor = _exchange.Snapshot.Substitutor;
        if (substitutor.IsEmpty || payload.IsEmpty)
        {
            return WebSocketVerdict.Forward;
        }

        if (opcode == WebSocketCodes.Close)
        {
            if (payload.Length <= 2 || substitutor.ScrubBody(payload.Span[2..]) is not { } reason)
            {
                return WebSocketVerdict.Forward;
            }

            var close = new byte[2 + reason.Length];
            payload.Span[..2].CopyTo(close);
            reason.CopyTo(close, 2);
            return new WebSocketVerdict(null, close);
        }

        var scrubbed = substitutor.ScrubBody(payload.Span);

        // A ping is echoed by the client in its pong: an emptied ping keeps a placeholder from coming back as a refusal.
        return new WebSocketVerdict(null, scrubbed is not null && opcode == WebSocketCodes.Ping ? [] : scrubbed);
    }

    /// <summary>The client-side stop as the refusal the request's event records.</summary>
    public Denial? Refusal(Policy.PolicyMode mode) => ClientStop is { } stop
        ? new Denial(stop.Reason == Reasons.ContentFinding || stop.Reason == Reasons.Undecodable || stop.Reason == Reasons.BudgetExceeded
            ? Decision.Refuse(stop.Rule ?? "content", stop.Reason, mode)
            : Decision.Enforce(stop.Rule ?? "websocket", stop.Reason), stop.Message)
        : null;

    private sealed class UpgradeFeature(IHttpUpgradeFeature inner, WebSocketRelay relay) : IHttpUpgradeFeature
    {
        public bool IsUpgradableRequest => inner.IsUpgradableRequest;

        public async Task<Stream> UpgradeAsync() => relay.Wrap(await inner.UpgradeAsync());
    }

    private sealed class ExtendedConnectFeature(IHttpExtendedConnectFeature inner, WebSocketRelay relay) : IHttpExtendedConnectFeature
    {
        public bool IsExtendedConnect => inner.IsExtendedConnect;

        public string? Protocol => inner.Protocol;

        public async ValueTask<Stream> AcceptAsync() => relay.Wrap(await inner.AcceptAsync());
    }
}
