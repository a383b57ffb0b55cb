using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// Reads the request body whole (up to <c>content.max_body</c>) when it must be scanned or may carry a placeholder,
/// into the request view. A larger body is refused (413) or, with <c>over_limit: allow</c>, forwarded unscanned.
/// </summary>
internal sealed class BodyStage : IRequestStage
{
    private const int ChunkSize = 64 * 1024;

    public async ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        var snapshot = exchange.Snapshot;
        var content = snapshot.Policy.Content;
        var needsBody = (snapshot.Scanner is not null && content.ScanBody) || snapshot.Bindings.Count > 0 || snapshot.Unavailable.Count > 0;
        if (!needsBody || !HasBody(exchange))
        {
            return null;
        }

        var request = exchange.Http!.Request;
        var limit = content.MaxBody;
        if (request.ContentLength > limit)
        {
            return OverLimit(exchange, limit);
        }

        var buffer = new MemoryStream((int)Math.Min(limit + 1, request.ContentLength ?? ChunkSize));
        var chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            while (true)
            {
                var n = await request.Body.ReadAsync(chunk, exchange.Aborted);
                if (n == 0)
                {
                    break;
                }

                buffer.Write(chunk, 0, n);
                if (buffer.Length > limit)
                {
                    // Keep what was read in front of the rest, for over_limit: allow.
                    buffer.Position = 0;
                    request.Body = new PrefixedStream(buffer, request.Body);
                    return OverLimit(exchange, limit);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        exchange.View.SetBody(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
        return null;
    }

    private static Denial? OverLimit(ProxyExchange exchange, long limit)
    {
        if (!exchange.Snapshot.Policy.Content.OverLimitAllow)
        {
            return exchange.Refuse(Denial.Of(Reasons.OverLimit, "content",
                $"the request body is larger than content.max_body ({limit} bytes) and cannot be scanned"));
        }

        exchange.Note = Reasons.OverLimitUnscanned;
        return null;
    }

    /// <summary>
    /// HTTP/2 and HTTP/3 bodies need neither Content-Length nor Transfer-Encoding: the server is asked whether one can
    /// follow. Upgrades (WebSocket, extended CONNECT) are not bodies: their stream starts after the response.
    /// </summary>
    private static bool HasBody(ProxyExchange exchange)
    {
        var context = exchange.Http!;
        var request = context.Request;
        return request.ContentLength > 0
            || (request.ContentLength is null && request.Headers.ContainsKey(HeaderNames.TransferEncoding))
            || (request.ContentLength is null && !exchange.View.Upgrade
                && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);
    }
}
