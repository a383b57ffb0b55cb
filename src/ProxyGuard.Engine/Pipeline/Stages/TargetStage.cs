using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// Target and tunnel identity: inside a tunnel the CONNECT target is the destination whatever the request says, and
/// Host, <c>:authority</c>, an absolute-form target and the TLS server name must all name it; a plain request must
/// be absolute-form <c>http://</c> and identifies its client here. Builds the request view every later stage reads.
/// </summary>
internal sealed class TargetStage(ProxyServices services) : IRequestStage
{
    public ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        var context = exchange.Http!;
        var rawTarget = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
        var denial = exchange.Connection!.Tunnel is { } tunnel
            ? InTunnel(exchange, tunnel, rawTarget)
            : Plain(exchange, rawTarget);
        if (denial is not null && denial.Decision.Stage == DecisionStage.Protocol)
        {
            StrictHttpStage.CloseAfterResponse(context); // a connection that sent a malformed target is not reused
        }

        return ValueTask.FromResult(denial is null ? null : exchange.Refuse(denial));
    }

    private static Denial? InTunnel(ProxyExchange exchange, TunnelTarget tunnel, string rawTarget)
    {
        string rawPath;
        string rawQuery;
        string? namedAuthority = null;
        if (RequestTarget.TryParseAbsolute(rawTarget, out var scheme, out var authority, out rawPath, out rawQuery))
        {
            if (scheme != "https" || !AuthorityMatches(authority, tunnel.Host, tunnel.Port))
            {
                namedAuthority = authority;
            }
        }
        else if (rawTarget.StartsWith('/'))
        {
            RequestTarget.SplitPathAndQuery(rawTarget, out rawPath, out rawQuery);
        }
        else
        {
            SetView(exchange, new RequestTarget("https", tunnel.Host, tunnel.Port, "/", string.Empty), tunnel.ClientId);
            return Denial.Of(Reasons.BadTarget, "protocol", "the request target is not a path");
        }

        // The tunnel target is the destination whatever the request says; it is recorded on refusals too.
        SetView(exchange, new RequestTarget("https", tunnel.Host, tunnel.Port, rawPath, rawQuery), tunnel.ClientId);
        if (namedAuthority is not null)
        {
            return HostMismatch(tunnel, namedAuthority);
        }

        var hostHeader = exchange.Http!.Request.Headers.Host.ToString();
        if (hostHeader.Length > 0 && !AuthorityMatches(hostHeader, tunnel.Host, tunnel.Port))
        {
            return HostMismatch(tunnel, hostHeader);
        }

        var sni = exchange.Http.Features.Get<ITlsHandshakeFeature>()?.HostName;
        if (!string.IsNullOrEmpty(sni))
        {
            var normalized = HostNormalizer.TryNormalize(RawTunnel.StripPort(sni), out var n, out _) ? n : null;
            if (normalized != tunnel.Host)
            {
                return Denial.Of(Reasons.SniMismatch, "tunnel",
                    $"the TLS server name {Denial.HeaderSafe(sni)} differs from the CONNECT target {tunnel.Host}");
            }
        }

        return null;
    }

    private Denial? Plain(ProxyExchange exchange, string rawTarget)
    {
        var request = exchange.Http!.Request;
        if (!RequestTarget.TryParseAbsolute(rawTarget, out var scheme, out var authority, out var rawPath, out var rawQuery))
        {
            return Denial.Of(Reasons.NotAProxyRequest, "protocol",
                "this is ProxyGuard, an HTTP proxy: send absolute-form requests (http://host/path) or CONNECT host:port");
        }

        if (scheme != "http")
        {
            return Denial.Of(Reasons.UseConnect, "protocol", "https:// targets must be reached through CONNECT");
        }

        if (!RequestTarget.TrySplitHostPort(authority, out var rawHost, out var port)
            || !HostNormalizer.TryNormalize(rawHost, out var host, out _))
        {
            return Denial.Of(Reasons.BadHost, "protocol", $"the target authority {Denial.HeaderSafe(authority)} is invalid");
        }

        var effectivePort = port ?? 80;
        var snapshot = exchange.Snapshot;
        var identified = services.Identify(snapshot, request.Headers[HeaderNames.ProxyAuthorization].ToString(), exchange.Connection!.RemoteAddress, out var clientId);
        SetView(exchange, new RequestTarget("http", host, effectivePort, rawPath, rawQuery), clientId);
        if (identified is { } refused)
        {
            return refused;
        }

        var hostHeader = request.Headers.Host.ToString();
        if (hostHeader.Length > 0 && !AuthorityMatches(hostHeader, host, effectivePort))
        {
            return Denial.Of(Reasons.HostMismatch, "tunnel",
                $"the Host header {Denial.HeaderSafe(hostHeader)} differs from the request target {host}");
        }

        // Like a CONNECT host, a plain request's host is scanned before the rules: a credential in a DNS label leaks
        // through the lookup whatever the rules say.
        if (ContentChecks.ScanHost(snapshot, host) is { } hostFinding)
        {
            exchange.HostCarriesCredential = true;
            return hostFinding;
        }

        return null;
    }

    private static void SetView(ProxyExchange exchange, RequestTarget target, string? clientId)
    {
        var context = exchange.Http!;
        // One entry per value; usually one value per name, so the array is sized by names and resized only for repeats.
        var headers = new KeyValuePair<string, string>[context.Request.Headers.Count];
        var count = 0;
        foreach (var header in context.Request.Headers)
        {
            foreach (var value in header.Value)
            {
                if (count == headers.Length)
                {
                    Array.Resize(ref headers, Math.Max(4, headers.Length * 2));
                }

                headers[count++] = new(header.Key, value ?? string.Empty);
            }
        }

        if (count != headers.Length)
        {
            Array.Resize(ref headers, count);
        }

        var upgrade = context.Request.Headers.ContainsKey(HeaderNames.Upgrade)
            || context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true
            || context.Features.Get<IHttpExtendedConnectFeature>()?.IsExtendedConnect == true;

        // A WebSocket over HTTP/2 (extended CONNECT, :protocol websocket) is the handshake that is a GET over
        // HTTP/1.1: decided, scanned and recorded as that GET, so one rule (methods, paths, websocket: true) covers both.
        var method = StrictHttpStage.IsWebSocketConnect(context) ? HttpMethods.Get : context.Request.Method;
        exchange.View = new RequestView(method, target, headers, clientId) { Upgrade = upgrade };
    }

    private static Denial HostMismatch(TunnelTarget tunnel, string authority) =>
        Denial.Of(Reasons.HostMismatch, "tunnel",
            $"the request names {Denial.HeaderSafe(authority)} inside a tunnel to {tunnel.Authority} (domain fronting is not allowed)");

    /// <summary>The authority names <paramref name="host"/>, with no port or exactly <paramref name="port"/>.</summary>
    internal static bool AuthorityMatches(string authority, string host, int port)
    {
        if (!RequestTarget.TrySplitHostPort(authority, out var rawHost, out var authorityPort)
            || !HostNormalizer.TryNormalize(rawHost, out var normalized, out _))
        {
            return false;
        }

        return normalized == host && (authorityPort is null || authorityPort == port);
    }
}
