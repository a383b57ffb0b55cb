using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Inspection.Budgets;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// Reads the request body whole (up to <c>content.max_body</c>) when it must be scanned or may carry a placeholder,
/// into the request view. A larger body is refused (413) or, with <c>over_limit: allow</c>, forwarded unscanned. Every
/// buffered byte is first reserved from the process-wide body budget (<c>503 over-capacity</c> when it has no room).
/// </summary>
internal sealed class BodyStage(ResourceBudget? budget) : IRequestStage
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

        // The process-wide budget is reserved before a byte is buffered: the declared length at once, a body without
        // one in steps as it arrives (one byte past the limit is read to tell "at the limit" from "over it"). The lease
        // is held by the exchange, which gives it back when the request ends, however it ends.
        var capacity = (int)Math.Min(limit + 1, request.ContentLength ?? ChunkSize);
        ResourceLease? lease = null;
        if (budget is not null)
        {
            lease = budget.TryReserve(capacity);
            if (lease is null)
            {
                return OverCapacity(exchange, budget);
            }

            exchange.Hold(lease);
        }

        var buffer = GC.AllocateUninitializedArray<byte>(capacity);
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length == request.ContentLength)
                {
                    break; // the declared length is all there is (Kestrel refuses more)
                }

                if (buffer.Length > limit)
                {
                    // Keep what was read in front of the rest, for over_limit: allow.
                    request.Body = new PrefixedStream(new MemoryStream(buffer, 0, length, writable: false), request.Body);
                    return OverLimit(exchange, limit);
                }

                var grown = (int)Math.Min(limit + 1, Math.Max((long)buffer.Length * 2, ChunkSize));
                if (lease is not null && !lease.TryGrow(grown - buffer.Length))
                {
                    return OverCapacity(exchange, budget!);
                }

                Array.Resize(ref buffer, grown);
            }

            var n = await request.Body.ReadAsync(buffer.AsMemory(length), exchange.Aborted);
            if (n == 0)
            {
                break;
            }

            length += n;
        }

        exchange.View.SetBody(buffer.AsMemory(0, length));
        return null;
    }

    private static Denial OverCapacity(ProxyExchange exchange, ResourceBudget budget) =>
        exchange.Refuse(Denial.Of(Reasons.OverCapacity, budget.Name,
            $"the proxy is buffering as many request bodies as it may at once ({budget.Capacity} bytes); retry shortly"))!;

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
