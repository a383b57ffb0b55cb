using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Network;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Inspection;
using ProxyGuard.Policy;
using ProxyGuard.Secrets;
using Yarp.ReverseProxy.Forwarder;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>
/// Decides and forwards every HTTP request on the proxy listener (inside intercepted tunnels and
/// plain absolute-form requests): target → client → rules → content scan → secret substitution →
/// forward → response scrub → audit event.
/// </summary>
public sealed class ProxyRequestHandler
{
    private static readonly string[] HopByHop =
    [
        "Proxy-Authorization", "Proxy-Connection", "Proxy-Authenticate", "Keep-Alive", "TE", "Trailer",
    ];

    private readonly ProxyServices _services;
    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _client;
    private readonly ILogger _logger;

    public ProxyRequestHandler(ProxyServices services, IHttpForwarder forwarder, HttpMessageInvoker client)
    {
        _services = services;
        _forwarder = forwarder;
        _client = client;
        _logger = services.LoggerFactory.CreateLogger<ProxyRequestHandler>();
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var connection = context.Features.Get<ProxyConnectionFeature>()!;
        var snapshot = _services.Runtime.Current;
        var state = new RequestState(context, connection, snapshot, started);
        try
        {
            var denial = await DecideAndPrepareAsync(state);
            if (denial is not null)
            {
                await DenyAsync(state, denial);
                return;
            }

            await ForwardAsync(state);
        }
        finally
        {
            _services.Metrics.RequestDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private async Task<Denial?> DecideAndPrepareAsync(RequestState s)
    {
        var context = s.Context;
        var request = context.Request;
        var rawTarget = context.Features.Get<IHttpRequestFeature>()!.RawTarget;

        if (!_services.Audit.Healthy)
        {
            return new Denial(503, "audit", "audit-unavailable", "the audit store cannot record events, so nothing is forwarded");
        }

        // Strict HTTP (SPEC 4.2): what an upstream might read differently never passes, and the
        // connection is closed after the refusal so no byte after it is read as another request.
        Denial? strict = null;
        if (HttpMethods.IsConnect(request.Method))
        {
            strict = new Denial(405, "protocol", "connect-not-allowed-here",
                "CONNECT is only accepted as the first request of a new connection to the proxy");
        }
        else if (request.Headers.ContainsKey(HeaderNames.TransferEncoding)
                 && (request.Headers.ContainsKey(HeaderNames.ContentLength) || !HttpProtocol.IsHttp11(request.Protocol)))
        {
            strict = new Denial(400, "protocol", "ambiguous-length",
                "Transfer-Encoding together with Content-Length, or on an HTTP/1.0 request, is ambiguous");
        }
        else if (request.Headers[HeaderNames.ContentLength] is { Count: > 0 } contentLength
                 && (contentLength.Count > 1 || contentLength[0] is not { Length: > 0 } lengthText || !lengthText.All(char.IsAsciiDigit)))
        {
            strict = new Denial(400, "protocol", "ambiguous-length", "the Content-Length header is not one number");
        }
        else if (request.Headers.TryGetValue(HeaderNames.Upgrade, out var upgrade)
                 && upgrade.ToString().Contains("h2c", StringComparison.OrdinalIgnoreCase))
        {
            strict = new Denial(403, "protocol", "h2c-not-allowed", "Upgrade: h2c is never forwarded");
        }
        else if (request.Headers.ContainsKey("HTTP2-Settings"))
        {
            strict = new Denial(403, "protocol", "h2c-not-allowed", "HTTP2-Settings (an h2c upgrade) is never forwarded");
        }

        if (strict is not null)
        {
            if (HttpProtocol.IsHttp11(request.Protocol) || HttpProtocol.IsHttp10(request.Protocol))
            {
                context.Response.Headers.Connection = "close";
            }

            return strict;
        }

        // 1. Target and client.
        var targetDenial = s.Connection.Tunnel is { } tunnel
            ? ResolveTunnelTarget(s, tunnel, rawTarget)
            : ResolvePlainTarget(s, rawTarget);
        if (targetDenial is not null)
        {
            // A connection that named the wrong target or sent a malformed one is not reused.
            if (targetDenial.Rule is "protocol" or "tunnel"
                && (HttpProtocol.IsHttp11(request.Protocol) || HttpProtocol.IsHttp10(request.Protocol)))
            {
                context.Response.Headers.Connection = "close";
            }

            return targetDenial;
        }

        var target = s.Target!;
        var snapshot = s.Snapshot;
        var policy = snapshot.Policy;
        var enforce = policy.Mode == PolicyMode.Enforce;

        // 2. Rules.
        var decision = policy.DecideRequest(s.ClientId, target.Scheme, target.Host, target.Port, request.Method, target.RawPath);
        s.Rule = decision.Rule;
        if (!decision.Allowed)
        {
            var reason = decision.Rule == "default" ? "no-rule" : "rule-deny";
            var denial = new Denial(403, decision.Rule, reason,
                $"{request.Method} {target.Scheme}://{target.Authority}{target.RawPath} is not allowed by the policy");
            if (enforce)
            {
                return denial;
            }

            s.AuditDenial ??= denial;
        }

        var isUpgrade = request.Headers.ContainsKey(HeaderNames.Upgrade) || context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true;
        if (isUpgrade && !decision.WebSocketAllowed)
        {
            var denial = new Denial(403, decision.Rule, "websocket-not-allowed",
                "protocol upgrades (WebSocket) are not enabled for this rule (websocket: true)");
            if (enforce)
            {
                return denial;
            }

            s.AuditDenial ??= denial;
        }

        // 3. Content scan of what the client sent (placeholders included, before substitution).
        var contentDenial = await ScanAsync(s);
        if (contentDenial is not null)
        {
            if (enforce || contentDenial.Status != 403)
            {
                return contentDenial;
            }

            s.AuditDenial ??= contentDenial;
        }

        // 4. Secret substitution toward bound hosts.
        try
        {
            await RefreshExpiredSecretsAsync(s);
            return Substitute(s);
        }
        catch (SecretUnavailableException ex)
        {
            return new Denial(503, "secrets", "secret-unavailable", $"a secret cannot be resolved on the proxy host right now ({ex.Reason})");
        }
    }

    private Denial? ResolveTunnelTarget(RequestState s, TunnelTarget tunnel, string rawTarget)
    {
        s.ClientId = tunnel.ClientId;
        string rawPath;
        string rawQuery;
        if (RequestTarget.TryParseAbsolute(rawTarget, out var scheme, out var authority, out rawPath, out rawQuery))
        {
            if (scheme != "https" || !AuthorityMatches(authority, tunnel.Host, tunnel.Port, 443))
            {
                s.Target = new RequestTarget("https", tunnel.Host, tunnel.Port, rawPath, rawQuery);
                return HostMismatch(tunnel, authority);
            }
        }
        else if (rawTarget.StartsWith('/'))
        {
            RequestTarget.SplitPathAndQuery(rawTarget, out rawPath, out rawQuery);
        }
        else
        {
            return new Denial(400, "protocol", "bad-target", "the request target is not a path");
        }

        // The tunnel target is the destination whatever the request says; record it on refusals too.
        s.Target = new RequestTarget("https", tunnel.Host, tunnel.Port, rawPath, rawQuery);
        var hostHeader = s.Context.Request.Headers.Host.ToString();
        if (hostHeader.Length > 0 && !AuthorityMatches(hostHeader, tunnel.Host, tunnel.Port, 443))
        {
            return HostMismatch(tunnel, hostHeader);
        }

        if (s.Connection.Sni is { } sni && sni != tunnel.Host)
        {
            return new Denial(403, "tunnel", "sni-mismatch", $"the TLS server name {sni} differs from the CONNECT target {tunnel.Host}");
        }

        return null;
    }

    private Denial? ResolvePlainTarget(RequestState s, string rawTarget)
    {
        var request = s.Context.Request;
        if (!RequestTarget.TryParseAbsolute(rawTarget, out var scheme, out var authority, out var rawPath, out var rawQuery))
        {
            return new Denial(400, "protocol", "not-a-proxy-request",
                "this is ProxyGuard, an HTTP proxy: send absolute-form requests (http://host/path) or CONNECT host:port");
        }

        if (scheme != "http")
        {
            return new Denial(400, "protocol", "use-connect", "https:// targets must be reached through CONNECT");
        }

        if (!RequestTarget.TrySplitHostPort(authority, out var rawHost, out var port)
            || !HostNormalizer.TryNormalize(rawHost, out var host, out _))
        {
            return new Denial(400, "protocol", "bad-host", $"the target authority {Denial.HeaderSafe(authority)} is invalid");
        }

        var effectivePort = port ?? 80;
        var hostHeader = request.Headers.Host.ToString();
        if (hostHeader.Length > 0 && !AuthorityMatches(hostHeader, host, effectivePort, 80))
        {
            return new Denial(403, "tunnel", "host-mismatch", $"the Host header {Denial.HeaderSafe(hostHeader)} differs from the request target {host}");
        }

        var snapshot = s.Snapshot;
        if (!snapshot.TryIdentify(request.Headers[HeaderNames.ProxyAuthorization].ToString(), s.Connection.RemoteAddress, out var clientId))
        {
            return new Denial(407, "clients", "auth-required", "the proxy requires a valid client token (Proxy-Authorization: Basic)");
        }

        s.ClientId = clientId;
        s.Connection.ServedPlainRequest = true;
        s.Target = new RequestTarget("http", host, effectivePort, rawPath, rawQuery);
        var hostDenial = ContentChecks.ScanHost(snapshot, host);
        if (hostDenial is not null)
        {
            // The host carries a credential: never record it in the event.
            s.Target = s.Target with { Host = ContentChecks.HostForEvent(host) };
        }

        return hostDenial;
    }

    private static Denial HostMismatch(TunnelTarget tunnel, string authority) =>
        new(403, "tunnel", "host-mismatch",
            $"the request names {Denial.HeaderSafe(authority)} inside a tunnel to {tunnel.Authority} (domain fronting is not allowed)");

    private static bool AuthorityMatches(string authority, string host, int port, int defaultPort)
    {
        if (!RequestTarget.TrySplitHostPort(authority, out var rawHost, out var authorityPort)
            || !HostNormalizer.TryNormalize(rawHost, out var normalized, out _))
        {
            return false;
        }

        return normalized == host && (authorityPort ?? defaultPort) == port
            || normalized == host && authorityPort is null;
    }

    private async Task<Denial?> ScanAsync(RequestState s)
    {
        var snapshot = s.Snapshot;
        var scanner = snapshot.Scanner;
        var content = snapshot.Policy.Content;
        var request = s.Context.Request;
        var host = s.Target!.Host;

        if (scanner is not null && content.ScanHeaders)
        {
            foreach (var header in request.Headers)
            {
                if (header.Key.Equals(HeaderNames.ProxyAuthorization, StringComparison.OrdinalIgnoreCase)
                    || header.Key.Equals(HeaderNames.Host, StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var nameResult = scanner.ScanText(header.Key, ScanLocation.Header, host);
                if (nameResult.Findings.Count > 0 || nameResult.Blocked)
                {
                    ContentChecks.Collect(nameResult, s.Findings, _services.Metrics);
                    if (nameResult.Blocked)
                    {
                        return ContentDenial(nameResult, "a request header name");
                    }
                }

                var values = header.Value;
                for (var i = 0; i < values.Count; i++)
                {
                    var result = scanner.ScanText(values[i] ?? string.Empty, ScanLocation.Header, host);
                    if (result.Findings.Count == 0 && !result.Blocked)
                    {
                        continue;
                    }

                    ContentChecks.Collect(result, s.Findings, _services.Metrics);
                    if (result.Blocked)
                    {
                        return ContentDenial(result, $"the {header.Key} header");
                    }

                    if (result.RewrittenText is not null)
                    {
                        var copy = values.ToArray();
                        copy[i] = result.RewrittenText;
                        request.Headers[header.Key] = new StringValues(copy);
                        values = request.Headers[header.Key];
                    }
                }
            }
        }

        if (scanner is not null && content.ScanQuery && s.Target.RawQuery.Length > 0)
        {
            var result = scanner.ScanQuery(s.Target.RawQuery, host);
            ContentChecks.Collect(result, s.Findings, _services.Metrics);
            if (result.Blocked)
            {
                return ContentDenial(result, "the query string");
            }

            if (result.RewrittenText is not null)
            {
                s.Target = s.Target with { RawQuery = result.RewrittenText };
            }
        }

        // The body: buffered whole (up to max_body) when it must be scanned or substituted.
        var needsBody = (scanner is not null && content.ScanBody) || snapshot.Bindings.Count > 0 || snapshot.Unavailable.Count > 0;
        // HTTP/2 and HTTP/3 bodies need neither Content-Length nor Transfer-Encoding: ask the server whether one can
        // follow. Upgrades (WebSocket, extended CONNECT) are not bodies: their stream starts after the response.
        var upgrading = s.Context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true
            || s.Context.Features.Get<IHttpExtendedConnectFeature>()?.IsExtendedConnect == true;
        var hasBody = request.ContentLength > 0
            || (request.ContentLength is null && request.Headers.ContainsKey(HeaderNames.TransferEncoding))
            || (request.ContentLength is null && !upgrading && s.Context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);
        if (!needsBody || !hasBody)
        {
            return null;
        }

        var buffered = await BufferBodyAsync(s, content.MaxBody);
        if (buffered is null)
        {
            s.UnscannedBody = true;
            if (!content.OverLimitAllow)
            {
                return new Denial(413, "content", "over-limit",
                    $"the request body is larger than content.max_body ({content.MaxBody} bytes) and cannot be scanned");
            }

            // over_limit: allow forwards the body unscanned; the event says so.
            s.Reason = "over-limit-unscanned";
            return null;
        }

        if (scanner is not null && content.ScanBody)
        {
            var result = scanner.ScanBody(buffered.Value, request.Headers.ContentEncoding.ToString() is { Length: > 0 } ce ? ce : null,
                request.ContentType, host);
            ContentChecks.Collect(result, s.Findings, _services.Metrics);
            if (result.Blocked)
            {
                return ContentDenial(result, "the request body");
            }

            if (result.RewrittenBody is not null)
            {
                request.Headers.Remove(HeaderNames.ContentEncoding);
                SetBody(s, result.RewrittenBody);
            }
        }

        return null;
    }

    private static Denial ContentDenial(ScanResult result, string where)
    {
        if (result.Error is not null)
        {
            return new Denial(403, "content", "undecodable", $"{where} could not be decoded for scanning: {result.Error}");
        }

        var finding = result.Findings.First(f => f.Action == ContentAction.Deny);
        return new Denial(403, finding.Detector, "content-finding",
            $"{where} contains what looks like a credential (detector {finding.Detector})");
    }

    /// <summary>Reads the request body into memory if it fits in <paramref name="limit"/>; otherwise keeps what was read in front of the rest and returns null.</summary>
    private static async Task<ReadOnlyMemory<byte>?> BufferBodyAsync(RequestState s, long limit)
    {
        var request = s.Context.Request;
        if (request.ContentLength > limit)
        {
            return null;
        }

        var capacity = (int)Math.Min(limit + 1, request.ContentLength ?? 64 * 1024);
        var buffer = new MemoryStream(capacity);
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (true)
            {
                var n = await request.Body.ReadAsync(chunk, s.Context.RequestAborted);
                if (n == 0)
                {
                    break;
                }

                buffer.Write(chunk, 0, n);
                if (buffer.Length > limit)
                {
                    buffer.Position = 0;
                    request.Body = new PrefixedStream(buffer, request.Body);
                    return null;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        var bytes = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        SetBody(s, bytes);
        return bytes;
    }

    private static void SetBody(RequestState s, ReadOnlyMemory<byte> body)
    {
        var request = s.Context.Request;

        // The buffers handed in (the read buffer, a rewritten or substituted body) are owned by this
        // request and never written again: forward them without another copy.
        request.Body = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(body, out var segment) && segment.Array is not null
            ? new MemoryStream(segment.Array, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(body.ToArray(), writable: false);
        request.Headers.Remove(HeaderNames.TransferEncoding);
        request.Headers.Remove(HeaderNames.Expect);
        request.ContentLength = body.Length;
        s.BufferedBody = body;
    }

    /// <summary>
    /// A Vault value is refreshed in the background while it is used; one left unused for longer than
    /// TTL + grace has expired although Vault may be healthy. Before substituting, fetch such a value
    /// again when this request carries its placeholder (a failure leaves it expired: Substitute then
    /// fails closed with <c>secret-unavailable</c>).
    /// </summary>
    private static async Task RefreshExpiredSecretsAsync(RequestState s)
    {
        string? carried = null;
        foreach (var binding in s.Snapshot.Bindings)
        {
            if (binding.Value.IsAvailable)
            {
                continue;
            }

            carried ??= CarriedText(s);
            if (!carried.Contains(binding.Placeholder, StringComparison.Ordinal))
            {
                continue;
            }

            try
            {
                await binding.Value.EnsureFreshAsync(s.Context.RequestAborted);
            }
            catch (SecretUnavailableException)
            {
                // Substitute reveals it and denies the request.
            }
        }
    }

    /// <summary>Headers (Basic credentials decoded), the query (percent-decoded) and the body, for a placeholder presence check.</summary>
    private static string CarriedText(RequestState s)
    {
        var text = new System.Text.StringBuilder();
        foreach (var header in s.Context.Request.Headers)
        {
            foreach (var value in header.Value)
            {
                text.Append(value).Append('\n');
                if (value is not null && value.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
                {
                    var decoded = new byte[value.Length];
                    if (Convert.TryFromBase64String(value[6..].Trim(), decoded, out var n))
                    {
                        text.Append(System.Text.Encoding.UTF8.GetString(decoded, 0, n)).Append('\n');
                    }
                }
            }
        }

        text.Append(s.Target!.RawQuery).Append('\n');
        try
        {
            text.Append(Uri.UnescapeDataString(s.Target.RawQuery)).Append('\n');
        }
        catch (UriFormatException)
        {
        }

        if (s.BufferedBody is { } body)
        {
            text.Append(System.Text.Encoding.UTF8.GetString(body.Span));
        }

        return text.ToString();
    }

    private Denial? Substitute(RequestState s)
    {
        var snapshot = s.Snapshot;
        var request = s.Context.Request;
        var host = s.Target!.Host;

        if (snapshot.Unavailable.Count > 0)
        {
            foreach (var header in request.Headers)
            {
                if (snapshot.FindUnavailablePlaceholder(header.Value.ToString()) is { } missing)
                {
                    return Unavailable(missing);
                }
            }

            if (snapshot.FindUnavailablePlaceholder(s.Target.RawQuery) is { } inQuery)
            {
                return Unavailable(inQuery);
            }

            if (s.BufferedBody is { } body && snapshot.FindUnavailablePlaceholder(System.Text.Encoding.UTF8.GetString(body.Span)) is { } inBody)
            {
                return Unavailable(inBody);
            }
        }

        var substitutor = snapshot.Substitutor;
        if (substitutor.IsEmpty)
        {
            return null;
        }

        // A real value sent by the sandbox (it should only ever hold placeholders) goes nowhere.
        foreach (var header in request.Headers)
        {
            if (!header.Key.Equals(HeaderNames.ProxyAuthorization, StringComparison.OrdinalIgnoreCase)
                && substitutor.FindRealValue(header.Value.ToString()) is { } leakedInHeader)
            {
                return RealValue(leakedInHeader, $"the {header.Key} header");
            }
        }

        if (substitutor.FindRealValue(s.Target.RawPath + "?" + s.Target.RawQuery) is { } leakedInUrl)
        {
            return RealValue(leakedInUrl, "the URL");
        }

        if (s.BufferedBody is { } sent && substitutor.FindRealValue(sent.Span) is { } leakedInBody)
        {
            return RealValue(leakedInBody, "the request body");
        }

        // Placeholders are never substituted in the path or host: there they are misuse.
        if (substitutor.FindPlaceholder(s.Target.RawPath) is { } inPath)
        {
            return Misuse(inPath, host, "the URL path");
        }

        if (substitutor.FindPlaceholder(host) is { } inHost)
        {
            return Misuse(inHost, host, "the host name");
        }

        List<KeyValuePair<string, StringValues>>? changed = null;
        foreach (var header in request.Headers)
        {
            if (header.Key.Equals(HeaderNames.ProxyAuthorization, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var values = header.Value;
            string?[]? copy = null;
            for (var i = 0; i < values.Count; i++)
            {
                var result = substitutor.SubstituteHeader(header.Key, values[i] ?? string.Empty, host);
                if (result.IsMisuse)
                {
                    return Misuse(result.MisusedSecret!, host, $"the {header.Key} header");
                }

                if (result.Injected.Count > 0)
                {
                    copy ??= values.ToArray();
                    copy[i] = result.Value;
                    s.Injected.AddRange(result.Injected);
                }
            }

            if (copy is not null)
            {
                (changed ??= []).Add(new(header.Key, new StringValues(copy)));
            }
        }

        if (changed is not null)
        {
            foreach (var (name, value) in changed)
            {
                request.Headers[name] = value;
            }
        }

        if (s.Target.RawQuery.Length > 0)
        {
            var result = substitutor.SubstituteQuery(s.Target.RawQuery, host);
            if (result.IsMisuse)
            {
                return Misuse(result.MisusedSecret!, host, "the query string");
            }

            if (result.Injected.Count > 0)
            {
                s.Target = s.Target with { RawQuery = result.Value };
                s.Injected.AddRange(result.Injected);
            }
        }

        if (s.BufferedBody is { } buffered)
        {
            var result = substitutor.SubstituteBody(buffered.Span, host, request.ContentType, out var newBody);
            if (result.IsMisuse)
            {
                return Misuse(result.MisusedSecret!, host, "the request body");
            }

            if (newBody is not null)
            {
                SetBody(s, newBody);
                s.Injected.AddRange(result.Injected);
            }
        }

        if (s.Injected.Count > 0)
        {
            // Ask for an identity-encoded response so that the real value can be scrubbed from it as a stream.
            request.Headers.AcceptEncoding = "identity";
            foreach (var name in s.Injected.Distinct())
            {
                _services.Metrics.SecretInjections.WithLabels(name).Inc();
            }
        }

        return null;
    }

    private static Denial Misuse(string secret, string host, string where) =>
        new(403, "secrets", "secret-misuse",
            $"{where} carries the placeholder of secret '{secret}', which is not bound to {host} in that location");

    private static Denial RealValue(string secret, string where) =>
        new(403, "secrets", "secret-real-value",
            $"{where} carries the real value of secret '{secret}'; the sandbox must only ever hold its placeholder");

    private static Denial Unavailable(UnavailableSecret secret) =>
        new(503, "secrets", "secret-unavailable", $"secret '{secret.Name}' cannot be resolved on the proxy host right now");

    private async Task ForwardAsync(RequestState s)
    {
        var context = s.Context;
        var target = s.Target!;
        var snapshot = s.Snapshot;
        var transformer = new ProxyTransformer(s, snapshot.Substitutor);

        var originalResponseBody = context.Response.Body;
        var countingResponse = new CountingStream(originalResponseBody);
        context.Response.Body = snapshot.Substitutor.IsEmpty
            ? countingResponse
            : snapshot.Substitutor.CreateScrubbingStream(countingResponse);

        var config = new ForwarderRequestConfig
        {
            ActivityTimeout = TimeSpan.FromMinutes(2),
            Version = target.Scheme == "https" ? System.Net.HttpVersion.Version20 : System.Net.HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };

        var countingBody = new CountingStream(context.Request.Body);
        context.Request.Body = countingBody;
        var error = ForwarderError.None;
        try
        {
            error = await _forwarder.SendAsync(context, target.DestinationPrefix, _client, config, transformer);
        }
        finally
        {
            // Completing the scrubber flushes, which would start an empty 502 before the refusal
            // below can write its headers; after a failure with no response, nothing is held in it.
            if (!snapshot.Substitutor.IsEmpty && (error == ForwarderError.None || context.Response.HasStarted))
            {
                await context.Response.Body.DisposeAsync();
            }

            context.Response.Body = originalResponseBody;
        }

        s.RequestBytes = countingBody.Count;
        s.ResponseBytes = countingResponse.Count;
        if (error != ForwarderError.None)
        {
            var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            var denial = ClassifyUpstreamError(error, exception, target);
            if (!context.Response.HasStarted)
            {
                context.Response.Clear();
                await DenyAsync(s, denial, denial.Status == 403 ? "deny" : null);
                return;
            }

            s.Reason = denial.Reason;
        }

        await RecordAsync(s, s.AuditDenial is not null ? "audit-deny" : "allow", context.Response.StatusCode);
    }

    private Denial ClassifyUpstreamError(ForwarderError error, Exception? exception, RequestTarget target)
    {
        _logger.LogDebug(exception, "forwarding to {Authority} failed: {Error}", target.Authority, error);
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case DestinationBlockedException blocked:
                    _services.Metrics.UpstreamErrors.WithLabels(blocked.Reason).Inc();
                    return new Denial(blocked.Reason == "dns-failure" ? 502 : 403, "network", blocked.Reason, blocked.Message);
                case AuthenticationException:
                    _services.Metrics.UpstreamErrors.WithLabels("tls").Inc();
                    return new Denial(502, "upstream", "upstream-tls",
                        $"the certificate of {target.Authority} is not trusted or does not match ({e.Message})");
                case TimeoutException:
                    _services.Metrics.UpstreamErrors.WithLabels("timeout").Inc();
                    return new Denial(504, "upstream", "upstream-timeout", $"{target.Authority} did not answer in time");
                case SocketException socket:
                    _services.Metrics.UpstreamErrors.WithLabels("connect").Inc();
                    return new Denial(502, "upstream", "upstream-connect", $"cannot connect to {target.Authority}: {socket.SocketErrorCode}");
            }
        }

        var kind = error switch
        {
            ForwarderError.RequestTimedOut => "timeout",
            ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled => "client-canceled",
            ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient => "client",
            _ => "upstream",
        };
        _services.Metrics.UpstreamErrors.WithLabels(kind).Inc();
        return kind == "timeout"
            ? new Denial(504, "upstream", "upstream-timeout", $"{target.Authority} did not answer in time")
            : new Denial(502, "upstream", "upstream-" + kind, $"forwarding to {target.Authority} failed ({error})");
    }

    private async Task DenyAsync(RequestState s, Denial denial, string? decisionOverride = null)
    {
        var context = s.Context;
        s.Rule ??= denial.Rule;
        s.Reason = denial.Reason;
        var isPolicyDenial = denial.Status is 403 or 405 or 407 or 413 or 429 or 400 or 503 || decisionOverride == "deny";
        var decision = isPolicyDenial ? "deny" : "allow";
        if (isPolicyDenial)
        {
            s.Rule = denial.Rule;
        }

        var recorded = await RecordAsync(s, decision, denial.Status);
        if (!context.Response.HasStarted)
        {
            var response = context.Response;
            response.StatusCode = recorded || !isPolicyDenial ? denial.Status : 503;
            response.Headers[Denial.DecisionHeader] = isPolicyDenial ? "deny" : "error";
            response.Headers[Denial.RuleHeader] = Denial.HeaderSafe(denial.Rule);
            response.Headers[Denial.ReasonHeader] = Denial.HeaderSafe(denial.Reason);
            if (denial.Status == 407)
            {
                response.Headers[HeaderNames.ProxyAuthenticate] = "Basic realm=\"proxyguard\"";
            }

            response.ContentType = "text/plain; charset=utf-8";
            if (context.Request.Protocol == "HTTP/1.1" && s.Connection.Tunnel is null && denial.Status == 407)
            {
                response.Headers.Connection = "close";
            }

            await response.WriteAsync(denial.Body(s.Snapshot.Policy.FilePath));
        }
    }

    private async Task<bool> RecordAsync(RequestState s, string decision, int status)
    {
        var target = s.Target;
        var request = s.Context.Request;
        var rule = s.Rule ?? "default";
        var reason = s.Reason;
        if (decision == "audit-deny" && s.AuditDenial is { } audit)
        {
            rule = audit.Rule;
            reason = audit.Reason;
        }

        _services.Metrics.Requests.WithLabels(decision, rule).Inc();
        return await _services.Audit.RecordAsync(new AuditEvent
        {
            Time = DateTimeOffset.UtcNow,
            Client = s.ClientId,
            ClientAddress = s.Connection.RemoteAddress?.ToString(),
            Kind = "request",
            Method = request.Method,
            Scheme = target?.Scheme ?? (s.Connection.Tunnel is null ? "http" : "https"),
            Host = target?.Host ?? s.Connection.Tunnel?.Host ?? string.Empty,
            Port = target?.Port ?? s.Connection.Tunnel?.Port ?? 0,
            Path = target is null ? null : PathRedaction.StripQueryValues(target.RawQuery.Length > 0 ? target.RawPath + "?" + target.RawQuery : target.RawPath),
            Decision = decision,
            Rule = rule,
            Reason = reason,
            Findings = s.Findings,
            SecretsInjected = s.Injected.Count == 0 ? [] : s.Injected.Distinct().ToList(),
            Status = status,
            RequestBytes = s.RequestBytes,
            ResponseBytes = s.ResponseBytes,
            DurationMs = Stopwatch.GetElapsedTime(s.Started).TotalMilliseconds,
        });
    }

    internal static bool IsHopByHop(string name) => HopByHop.Any(h => h.Equals(name, StringComparison.OrdinalIgnoreCase));
}
