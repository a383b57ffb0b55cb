using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Forwarding.WebSockets;
using ProxyGuard.Engine.Network;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;
using Yarp.ReverseProxy.Forwarder;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// Applies the outgoing changes to the request, forwards it with YARP's forwarder (response headers and body
/// scrubbed when secrets are configured) and maps upstream failures to reasons.
/// </summary>
internal sealed class ForwardStage(ProxyServices services, IHttpForwarder forwarder, HttpMessageInvoker client) : IRequestStage
{
    private static readonly ForwarderRequestConfig Https = new()
    {
        ActivityTimeout = TimeSpan.FromMinutes(2),
        Version = System.Net.HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
    };

    private static readonly ForwarderRequestConfig Http = Https with { Version = System.Net.HttpVersion.Version11 };

    private readonly ILogger _logger = services.LoggerFactory.CreateLogger<ForwardStage>();

    public async ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        var context = exchange.Http!;
        var view = exchange.View;
        var target = view.Target;
        var substitutor = exchange.Snapshot.Substitutor;

        // A WebSocket over HTTP/2 is a stream of a connection the client already holds, but it holds an upstream
        // connection of its own for as long as it lives: it takes a connection slot of its client (the address, and
        // the client id when known) like a connection would, so streams cannot multiply the per-client limit.
        if (view.Upgrade && StrictHttpStage.IsWebSocketConnect(context) && exchange.Connection is { RemoteAddress: not null } connection)
        {
            // The slots are handed to the exchange, which releases them when the request (the WebSocket) ends.
#pragma warning disable CA2000
            var addressSlot = services.Connections.TryAcquire(Connect.ConnectMiddleware.AddressKey(connection)) is { } a ? exchange.Hold(a) : null;
            var clientSlot = addressSlot is null || connection.Tunnel?.ClientId is not { } clientId ? addressSlot
                : services.Connections.TryAcquire("client:" + clientId) is { } c ? exchange.Hold(c) : null;
#pragma warning restore CA2000
            if (addressSlot is null || clientSlot is null)
            {
                return exchange.Refuse(Connect.ConnectMiddleware.TooManyConnections);
            }
        }

        // Every forwarded request holds an upstream connection (HTTP/1.1 upstreams: one each) and buffers until its
        // response is read: a client's requests in flight, over all its connections and HTTP/2 streams, are bounded
        // (R7-6), released when the request ends (completed, reset or aborted).
        if (exchange.Connection is { RemoteAddress: not null } requester && !TakeInFlightSlots(exchange, requester))
        {
            return exchange.Refuse(TooManyRequestsInFlight);
        }

        Apply(exchange);

        var decodeLease = substitutor.IsEmpty ? null : services.Budgets.Decoding.TryReserve(0) is { } lease ? exchange.Hold(lease) : null;
        var transformer = new ProxyTransformer(target, exchange.Outgoing.RawQuery, substitutor, decodeLease);
        var originalResponseBody = context.Response.Body;
        var countingResponse = new CountingStream(originalResponseBody);
        context.Response.Body = substitutor.IsEmpty ? countingResponse : substitutor.CreateScrubbingStream(countingResponse);
        var countingBody = new CountingStream(context.Request.Body);
        context.Request.Body = countingBody;

        // An upgrade is relayed frame by frame: decided and scrubbed like requests and responses.
        WebSocketRelay? relay = null;
        if (view.Upgrade)
        {
            relay = new WebSocketRelay(exchange, services.Metrics, services.Budgets.WebSockets, services.Limits.WebSocketIdleTimeout, services.Limits.WebSocketMaxLifetime);
            relay.Install(context);
        }

        var error = ForwarderError.None;
        try
        {
            error = await forwarder.SendAsync(context, target.DestinationPrefix, client, ConfigFor(target.Scheme == "https" ? Https : Http, relay), transformer);
        }
        finally
        {
            // Completing the scrubber flushes, which would start an empty 502 before the refusal below can write its
            // headers; after a failure with no response, nothing is held in it.
            // After a protocol upgrade (101, or 200 to an HTTP/2 extended CONNECT) the connection (HTTP/2: the stream)
            // belongs to the upgraded stream: nothing was written through the scrubber and nothing may be written to
            // the response any more.
            // A response that has no body (HEAD; 1xx, 204, 205, 304) never gets one: whatever the scrubber holds is dropped.
            var upgraded = context.Response.StatusCode == StatusCodes.Status101SwitchingProtocols || relay?.Accepted == true;
            if (!substitutor.IsEmpty && !upgraded && !IsBodiless(context)
                && ((error == ForwarderError.None && transformer.Refusal is null) || context.Response.HasStarted))
            {
                await context.Response.Body.DisposeAsync();
            }

            context.Response.Body = originalResponseBody;
        }

        exchange.RequestBytes = countingBody.Count + (relay?.ClientBytes ?? 0);
        exchange.ResponseBytes = countingResponse.Count + (relay?.UpstreamBytes ?? 0);
        if (exchange.Upload is { Exceeded: { } spent })
        {
            // The streamed body or the WebSocket went past an upload budget: cut off there (in audit mode: recorded only).
            var cutOff = BudgetStage.Spent(spent, exchange.Snapshot.Policy.Mode, cutOff: true);
            if (exchange.Refuse(cutOff) is { } refusal)
            {
                services.Metrics.BudgetCutoffs.WithLabels(refusal.Rule, relay is null ? "upload" : "websocket").Inc();
                if (!context.Response.HasStarted)
                {
                    context.Response.Clear();
                }

                return refusal;
            }
        }

        if (relay?.TimeoutStop is { } timeout && relay.ClientStop is null)
        {
            // Closed idle or too old (both sides got 1001): the event says why; the forwarder's error is that close.
            exchange.Note = timeout.Reason;
            return null;
        }

        if (relay?.Refusal(exchange.Snapshot.Policy.Mode) is { } frameRefusal)
        {
            // A message the client sent was refused: both sides were closed (1008 and the like) and the event records it.
            return frameRefusal;
        }

        if (relay?.UpstreamStop is { } upstreamStop)
        {
            exchange.Note = upstreamStop.Reason;
            return null;
        }

        if (transformer.Refusal is { } unsafeResponse && !context.Response.HasStarted)
        {
            // The body was not forwarded: the response could not be made safe to return.
            context.Response.Clear();
            return exchange.Refuse(transformer.RefusalReason == Reasons.OverCapacity
                ? Denial.Of(Reasons.OverCapacity, Runtime.ProcessBudgets.DecodingName,
                    $"the response from {target.Authority} must be decoded to scrub secrets from it, and {unsafeResponse}; retry shortly")
                : transformer.RefusalReason == Reasons.ResponsePartial
                    ? Denial.Of(Reasons.ResponsePartial, "upstream",
                        $"the response from {target.Authority} is not returned: {unsafeResponse}")
                    : Denial.Of(Reasons.ResponseUndecodable, "upstream",
                        $"the response from {target.Authority} cannot be decoded to scrub secrets from it ({unsafeResponse})"));
        }

        if (error == ForwarderError.None)
        {
            return null;
        }

        var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        var failure = Classify(error, exception, target, substitutor);
        if (context.Response.HasStarted)
        {
            exchange.Note = failure.Decision.Reason;
            return null;
        }

        if (FailedBeforeSending(exception))
        {
            // The event records what happened: a request that never left carried no secret anywhere.
            exchange.Injected.Clear();
        }

        context.Response.Clear();
        return exchange.Refuse(failure);
    }

    /// <summary>True when the response may not carry a body: an answer to HEAD, or a 1xx, 204, 205 or 304 status.</summary>
    internal static bool IsBodiless(HttpContext context) =>
        HttpMethods.IsHead(context.Request.Method)
        || context.Response.StatusCode is < 200 or StatusCodes.Status204NoContent or StatusCodes.Status205ResetContent or StatusCodes.Status304NotModified;

    /// <summary>
    /// The forwarder's idle timeout also ends an upgraded connection, abruptly; for a WebSocket it is set past the relay's
    /// own idle timeout, so that the relay closes it first, with close frames and a note on the event.
    /// </summary>
    private static ForwarderRequestConfig ConfigFor(ForwarderRequestConfig config, WebSocketRelay? relay) =>
        relay is null || config.ActivityTimeout is not { } activity || activity > relay.IdleTimeout
            ? config
            : config with { ActivityTimeout = relay.IdleTimeout + TimeSpan.FromSeconds(30) };

    /// <summary>The rule name of a refusal by the process-wide bound on upstream connections.</summary>
    internal const string UpstreamConnectionsName = "upstream-connections";

    internal static Denial TooManyRequestsInFlight { get; } = Denial.Of(Reasons.TooManyConnections, "limits",
        "this client has too many requests in flight (unread responses hold upstream connections); finish or cancel some and retry");

    /// <summary>Takes an in-flight slot for the client's address and, when known, its client id; false past either limit.</summary>
    private bool TakeInFlightSlots(ProxyExchange exchange, Connect.ProxyConnectionFeature connection)
    {
        // The slots are handed to the exchange, which releases them when the request ends.
#pragma warning disable CA2000
        if (services.RequestsInFlight.TryAcquire(Connect.ConnectMiddleware.AddressKey(connection)) is not { } address)
        {
            return false;
        }

        exchange.Hold(address);
        if (connection.Tunnel?.ClientId is { } clientId)
        {
            if (services.RequestsInFlight.TryAcquire("client:" + clientId) is not { } client)
            {
                return false;
            }

            exchange.Hold(client);
        }
#pragma warning restore CA2000

        return true;
    }

    /// <summary>
    /// True when forwarding failed before any byte of the request was written: the name did not resolve, the address
    /// was refused, the connection or the TLS handshake with the upstream failed.
    /// </summary>
    internal static bool FailedBeforeSending(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is DestinationBlockedException or AuthenticationException
                || e is HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError or HttpRequestError.SecureConnectionError })
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Puts what the stages changed (headers, query, body) into the request that is forwarded.</summary>
    private static void Apply(ProxyExchange exchange)
    {
        var request = exchange.Http!.Request;
        var outgoing = exchange.Outgoing;
        foreach (var (name, values) in outgoing.ChangedHeaders)
        {
            request.Headers[name] = values;
        }

        if (outgoing.CurrentBody(exchange.View) is { } body)
        {
            // The buffers (the read buffer, a rewritten or substituted body) belong to this request and are never
            // written again: forward them without another copy.
            request.Body = MemoryMarshal.TryGetArray(body, out var segment) && segment.Array is not null
                ? new MemoryStream(segment.Array, segment.Offset, segment.Count, writable: false)
                : new MemoryStream(body.ToArray(), writable: false);
            request.Headers.Remove(HeaderNames.TransferEncoding);
            request.Headers.Remove(HeaderNames.Expect);
            request.ContentLength = body.Length;
            if (outgoing.BodyDecoded)
            {
                request.Headers.Remove(HeaderNames.ContentEncoding);
            }
        }

        if (outgoing.AskIdentityEncoding)
        {
            request.Headers.AcceptEncoding = "identity";
        }
    }

    /// <summary>The exception chain as "Type: message; Type: message", every real value scrubbed, control characters escaped.</summary>
    private static string Describe(Exception? exception, Secrets.Substitutor substitutor)
    {
        var parts = new List<string>();
        for (var e = exception; e is not null && parts.Count < 4; e = e.InnerException)
        {
            var message = substitutor.IsEmpty ? e.Message : substitutor.ScrubText(e.Message); // scrubbed whole, then cut
            parts.Add(e.GetType().Name + ": " + Audit.EventText.Clean(message.Length > 300 ? message[..300] + "..." : message));
        }

        return parts.Count == 0 ? "no exception" : string.Join("; ", parts);
    }

    private Denial Classify(ForwarderError error, Exception? exception, Forwarding.RequestTarget target, Secrets.Substitutor substitutor)
    {
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            // An exception message can quote upstream bytes (an invalid header line the upstream sent, which may
            // echo a substituted secret): only the exception types, and the messages scrubbed and sanitised, are logged.
            EngineLog.ForwardFailed(_logger, target.Authority, error, Describe(exception, substitutor));
        }
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case DestinationBlockedException { Reason: "over-capacity" } full:
                    // The process-wide bound on upstream connections (R7-6): named like the other budgets.
                    return Denial.Of(Reasons.OverCapacity, UpstreamConnectionsName, full.Message);
                case DestinationBlockedException blocked:
                    services.Metrics.UpstreamErrors.WithLabels(blocked.Reason).Inc();
                    return Denial.Of(Reasons.Find(blocked.Reason) ?? Reasons.PrivateDestination, "network", blocked.Message);
                case AuthenticationException:
                    services.Metrics.UpstreamErrors.WithLabels("tls").Inc();
                    return Denial.Of(Reasons.UpstreamTls, "upstream",
                        $"the certificate of {target.Authority} is not trusted or does not match ({e.Message})");
                case TimeoutException:
                    services.Metrics.UpstreamErrors.WithLabels("timeout").Inc();
                    return Denial.Of(Reasons.UpstreamTimeout, "upstream", $"{target.Authority} did not answer in time");
                case SocketException socket:
                    services.Metrics.UpstreamErrors.WithLabels("connect").Inc();
                    return Denial.Of(Reasons.UpstreamConnect, "upstream", $"cannot connect to {target.Authority}: {socket.SocketErrorCode}");
            }
        }

        var (kind, reason) = error switch
        {
            ForwarderError.RequestTimedOut => ("timeout", Reasons.UpstreamTimeout),
            ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled => ("client-canceled", Reasons.ClientCanceled),
            ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient => ("client", Reasons.ClientError),
            _ => ("upstream", Reasons.UpstreamError),
        };
        services.Metrics.UpstreamErrors.WithLabels(kind).Inc();
        return Denial.Of(reason, "upstream", reason == Reasons.UpstreamTimeout
            ? $"{target.Authority} did not answer in time"
            : $"forwarding to {target.Authority} failed ({error})");
    }
}
