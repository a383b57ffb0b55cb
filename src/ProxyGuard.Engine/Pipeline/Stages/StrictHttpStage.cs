using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Framing;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// Strict HTTP (SPEC 4.2): what an upstream might read differently never passes. The connection is closed after
/// such a refusal so that no byte after it is read as another request.
/// </summary>
internal sealed class StrictHttpStage : IRequestStage
{
    public ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        var context = exchange.Http!;
        var denial = CheckAsSent(context) ?? CheckExtendedConnect(exchange) ?? Check(context.Request);
        if (denial is null)
        {
            return ValueTask.FromResult<Denial?>(null);
        }

        CloseAfterResponse(context);
        return ValueTask.FromResult(exchange.Refuse(denial));
    }

    /// <summary>Asks Kestrel to close an HTTP/1.x connection after this response.</summary>
    public static void CloseAfterResponse(HttpContext context)
    {
        if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
        {
            context.Response.Headers.Connection = "close";
        }
    }

    /// <summary>
    /// What Kestrel normalised before the application ran, as the framing guard recorded it from the client's bytes:
    /// Content-Length with Transfer-Encoding (Kestrel drops Content-Length), a signed or otherwise non-canonical
    /// Content-Length (Kestrel reads "+5" as 5), HTTP/2 :authority and host that disagree (Kestrel replaces host).
    /// A request the guard could not follow is refused too.
    /// </summary>
    private static Denial? CheckAsSent(HttpContext context)
    {
        if (context.Features.Get<FramingFeature>() is not { } framing)
        {
            return null; // not a proxy-listener connection (unit tests build contexts without one)
        }

        var problem = context.Features.Get<IHttp2StreamIdFeature>() is { } stream
            ? framing.Stream(stream.StreamId)
            : framing.CurrentHttp1();
        return problem switch
        {
            FramingProblem.None => null,
            FramingProblem.LengthAndTransferEncoding => Denial.Of(Reasons.AmbiguousLength, "protocol",
                "the request has both Content-Length and Transfer-Encoding, which servers may frame differently"),
            FramingProblem.NonCanonicalLength => Denial.Of(Reasons.AmbiguousLength, "protocol",
                "the Content-Length header is not one canonical number (no sign, list, space or leading zero)"),
            FramingProblem.AuthorityMismatch => Denial.Of(Reasons.AuthorityMismatch, "protocol",
                "the HTTP/2 :authority and the host header name different hosts (or host appears twice)"),
            _ => Denial.Of(Reasons.AmbiguousLength, "protocol",
                "the proxy could not follow this connection's request framing, so the request is not forwarded"),
        };
    }

    /// <summary>
    /// True for an HTTP/2 extended CONNECT (RFC 8441) whose <c>:protocol</c> is <c>websocket</c>: a WebSocket
    /// handshake, decided and relayed like the HTTP/1.1 upgrade.
    /// </summary>
    public static bool IsWebSocketConnect(HttpContext context) =>
        context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } connect
        && string.Equals(connect.Protocol, "websocket", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// An extended CONNECT is relayed only as a WebSocket, only inside an intercepted tunnel: any other
    /// <c>:protocol</c> (a tunnel of an unknown protocol) is refused before anything else looks at it.
    /// </summary>
    private static Denial? CheckExtendedConnect(ProxyExchange exchange)
    {
        var context = exchange.Http!;
        if (context.Features.Get<IHttpExtendedConnectFeature>() is not { IsExtendedConnect: true } connect)
        {
            return null;
        }

        if (!IsWebSocketConnect(context))
        {
            return Denial.Of(Reasons.ConnectNotAllowedHere, "protocol",
                $"an extended CONNECT for :protocol {Denial.HeaderSafe(connect.Protocol ?? string.Empty)} is not relayed (only websocket is)");
        }

        return exchange.Connection?.Tunnel is null
            ? Denial.Of(Reasons.ConnectNotAllowedHere, "protocol", "a WebSocket over HTTP/2 is only relayed inside a CONNECT tunnel")
            : null;
    }

    /// <summary>Request headers that must appear in one field at most (RFC 9110: not lists).</summary>
    private static readonly string[] SingleHeaders = [HeaderNames.Host, HeaderNames.ContentType, HeaderNames.ContentRange]; // Content-Length: below

    private static Denial? Check(HttpRequest request)
    {
        var headers = request.Headers;
        if (HttpMethods.IsConnect(request.Method) && !IsWebSocketConnect(request.HttpContext))
        {
            return Denial.Of(Reasons.ConnectNotAllowedHere, "protocol",
                "CONNECT is only accepted as the first request of a new connection to the proxy");
        }

        if (headers.ContainsKey(HeaderNames.TransferEncoding)
            && (headers.ContainsKey(HeaderNames.ContentLength) || !HttpProtocol.IsHttp11(request.Protocol)))
        {
            return Denial.Of(Reasons.AmbiguousLength, "protocol",
                "Transfer-Encoding together with Content-Length, or on an HTTP/1.0 request, is ambiguous");
        }

        // A header that must be single, sent twice: one server reads the first field, another the last, the proxy's
        // scan one of them. (List headers such as Content-Encoding are read as all their fields joined, as servers do.)
        foreach (var name in SingleHeaders)
        {
            if (headers.TryGetValue(name, out var values) && values.Count > 1)
            {
                return Denial.Of(Reasons.AmbiguousHeader, "protocol",
                    $"the {name} header appears in more than one field, which servers may read differently");
            }
        }

        if (headers[HeaderNames.ContentLength] is { Count: > 0 } contentLength && !IsCanonicalLength(contentLength))
        {
            return Denial.Of(Reasons.AmbiguousLength, "protocol", "the Content-Length header is not one canonical number");
        }

        if (headers.TryGetValue(HeaderNames.Upgrade, out var upgrade)
            && upgrade.ToString().Contains("h2c", StringComparison.OrdinalIgnoreCase))
        {
            return Denial.Of(Reasons.H2cNotAllowed, "protocol", "Upgrade: h2c is never forwarded");
        }

        if (headers.ContainsKey("HTTP2-Settings"))
        {
            return Denial.Of(Reasons.H2cNotAllowed, "protocol", "HTTP2-Settings (an h2c upgrade) is never forwarded");
        }

        return null;
    }

    /// <summary>One value of ASCII digits, no sign, no leading zero (except "0"), at most 18 digits.</summary>
    private static bool IsCanonicalLength(Microsoft.Extensions.Primitives.StringValues values)
    {
        if (values.Count != 1 || values[0] is not { Length: > 0 and <= 18 } text)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return text.Length == 1 || text[0] != '0';
    }
}
