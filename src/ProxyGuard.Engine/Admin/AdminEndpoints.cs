using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Prometheus;
using ProxyGuard.Audit;
using Microsoft.AspNetCore.Routing;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.Engine.Grants;
using ProxyGuard.Policy.Grants;
using ProxyGuard.Engine.Hosting;
using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Admin;

/// <summary>The admin API (SPEC 5) on its own listener: health, metrics, events, policy.</summary>
internal static class AdminEndpoints
{
    private const int MaxPage = 1000;

    public static void Map(WebApplication app, ProxyServices services, AdminToken token)
    {
        // 200 while the proxy can serve; 503 while the audit store fails (requests are then refused)
        // or once the interception CA has expired (intercepted TLS then fails), so that an
        // orchestrator's probe sees what the sandboxes see. A CA that expires within 30 days adds a
        // warning line to the 200. Little detail: this is unauthenticated.
        app.MapGet("/healthz", () =>
        {
            if (!services.Audit.Healthy)
            {
                return Results.Text("audit-unavailable\n", "text/plain", statusCode: 503);
            }

            // A central event store that cannot be reached is degraded, not down: events wait in the local outbox
            // (up to its bound, past which the store above reports audit-unavailable). Never the store's credentials.
            var degraded = services.Audit.Central is { Up: false } central
                ? string.Create(CultureInfo.InvariantCulture, $"degraded: events-store-unreachable ({central.Backlog} events waiting to ship)\n")
                : string.Empty;
            var ca = services.Certificates.CaStatus;
            return ca.State switch
            {
                CaExpiryState.Expired => Results.Text("ca-expired\n", "text/plain", statusCode: 503),
                CaExpiryState.ExpiresSoon => Results.Text(
                    string.Create(CultureInfo.InvariantCulture, $"ok\nwarning: ca-expires-soon ({ca.DaysLeft} days)\n") + degraded, "text/plain"),
                _ => Results.Text("ok\n" + degraded, "text/plain"),
            };
        });

        app.MapGet("/metrics", async (HttpContext context) =>
        {
            UpdateGauges(services);
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await services.Metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
        });

        var api = app.MapGroup("/api").AddEndpointFilter(async (ctx, next) =>
        {
            if (!token.Verify(ctx.HttpContext.Request.Headers.Authorization.ToString()))
            {
                ctx.HttpContext.Response.Headers.WWWAuthenticate = "Bearer realm=\"proxyguard-admin\"";
                return Results.Json(new { error = "missing or wrong admin token" }, statusCode: 401);
            }

            return await next(ctx);
        });

        api.MapGet("/events", async (HttpContext context) =>
        {
            var q = context.Request.Query;
            long after = 0;
            var limit = 100;
            if (q.TryGetValue("after", out var afterText) && !long.TryParse(afterText, NumberStyles.None, CultureInfo.InvariantCulture, out after))
            {
                return Results.Json(new { error = "after must be a non-negative integer" }, statusCode: 400);
            }

            if (q.TryGetValue("limit", out var limitText) && !TryParseLimit(limitText.ToString(), out limit))
            {
                return Results.Json(new { error = "limit must be a positive integer" }, statusCode: 400);
            }

            // A control character (NUL included) or a broken UTF-16 pair never occurs in a stored event (those are
            // escaped when recorded) and PostgreSQL refuses a NUL in text: refused here, the same with either store.
            foreach (var name in (ReadOnlySpan<string>)["decision", "client", "host"])
            {
                if (!IsFilterText(q[name].ToString()))
                {
                    return Results.Json(new { error = $"{name} must not contain control characters" }, statusCode: 400);
                }
            }

            var query = new EventQuery(after, Math.Clamp(limit, 1, MaxPage), Empty(q["decision"]), Empty(q["client"]), Empty(q["host"]));
            EventPage page;
            if (services.Audit.Central is { } central)
            {
                // Every replica answers from the central store, with its cursor; while it is unreachable, 503 (retry).
                try
                {
                    page = await central.QueryAsync(query, context.RequestAborted);
                }
                catch (EventStoreException)
                {
                    return Results.Json(new { error = "the central event store is unreachable; retry" }, statusCode: 503);
                }
            }
            else
            {
                page = services.Audit.Store.Query(query);
            }

            var events = JsonSerializer.Serialize(page.Events, AuditJson.Options);
            return Results.Text($"{{\"events\":{events},\"next\":{page.Next.ToString(CultureInfo.InvariantCulture)}}}", "application/json");
        });

        api.MapGet("/policy", () =>
        {
            var policy = services.Runtime.Current.Policy;
            return Results.Json(new
            {
                file = policy.FilePath,
                sha256 = policy.Sha256,
                loadedAt = policy.LoadedAt,
                mode = policy.Mode.ToString().ToLowerInvariant(),
                @default = policy.Default.ToString().ToLowerInvariant(),
                rules = policy.Rules.Select(r => new
                {
                    name = r.Name,
                    action = r.Action.ToString().ToLowerInvariant(),
                    hosts = r.Hosts,
                    ports = r.Ports,
                    methods = r.Methods,
                    paths = r.Paths,
                    clients = r.Clients,
                }),
                clients = policy.Clients.Select(c => c.Id),
                secrets = policy.Secrets.Select(s => s.Name),
            });
        });

        if (services.Grants is { } grants)
        {
            MapGrants(api, grants);
        }

        api.MapPost("/policy/reload", async (HttpContext context) =>
        {
            var result = await services.Runtime.ReloadAsync(context.RequestAborted);
            return Results.Json(new { ok = result.Success, sha256 = result.Sha256, errors = result.Errors },
                statusCode: result.Success ? 200 : 422);
        });
    }

    /// <summary>
    /// Time-boxed grants: <c>POST /api/grants</c> <c>{"client","host","methods"?,"paths"?,"for","reason"}</c> (201 with
    /// the grant), <c>GET /api/grants</c> (the active ones), <c>DELETE /api/grants/{id}</c>. The creator is recorded as
    /// <c>cli</c> when the CLI sent the request (<c>"via": "cli"</c>), otherwise <c>admin-api</c>: both hold the admin token.
    /// </summary>
    private static void MapGrants(RouteGroupBuilder api, GrantRegistry grants)
    {
        api.MapGet("/grants", async () =>
        {
            try
            {
                return Results.Json(new { grants = (await grants.ListAsync()).Select(GrantJson), max = grants.MaxActive });
            }
            catch (InvalidOperationException ex)
            {
                return Results.Json(new { error = ex.Message }, statusCode: 503);
            }
        });

        api.MapPost("/grants", async (HttpContext context) =>
        {
            // Read at most MaxGrantBody + 1 bytes, with or without a Content-Length.
            var buffer = new byte[MaxGrantBody + 1];
            var length = 0;
            int read;
            while (length < buffer.Length && (read = await context.Request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted)) > 0)
            {
                length += read;
            }

            if (length > MaxGrantBody)
            {
                return Results.Json(new { error = $"send a JSON object of at most {MaxGrantBody} bytes" }, statusCode: 413);
            }

            JsonElement body;
            try
            {
                using var doc = JsonDocument.Parse(buffer.AsMemory(0, length));
                body = doc.RootElement.Clone();
            }
            catch (JsonException)
            {
                return Results.Json(new { error = "the body is not JSON" }, statusCode: 400);
            }

            if (body.ValueKind != JsonValueKind.Object)
            {
                return Results.Json(new { error = "the body must be a JSON object" }, statusCode: 400);
            }

            var forText = Text(body, "for");
            if (!Grant.TryParseDuration(forText, out var duration))
            {
                return Results.Json(new { error = "for: a duration such as 90s, 30m, 2h or 1d" }, statusCode: 400);
            }

            var by = Text(body, "via") == "cli" ? "cli" : "admin-api";
            var (grant, error, status) = await grants.AddAsync(
                Text(body, "client"), Text(body, "host"), List(body, "methods"), List(body, "paths"), duration, Text(body, "reason"), by);
            return grant is null ? Results.Json(new { error }, statusCode: status) : Results.Json(GrantJson(grant), statusCode: 201);
        });

        api.MapDelete("/grants/{id}", async (string id, HttpContext context) =>
        {
            var by = context.Request.Query["via"] == "cli" ? "cli" : "admin-api";
            Grant? grant;
            try
            {
                grant = await grants.RevokeAsync(id, by);
            }
            catch (InvalidOperationException ex)
            {
                return Results.Json(new { error = ex.Message }, statusCode: 503);
            }

            return grant is null
                ? Results.Json(new { error = $"no active grant '{id}'" }, statusCode: 404)
                : Results.Json(GrantJson(grant) with { State = "revoked" });
        });
    }

    private const int MaxGrantBody = 16 * 1024;

    private static GrantView GrantJson(Grant g) => new(
        g.Id, g.Client, Grant.FormatHost(g.Host, g.Port), g.Methods, g.Paths, g.Created, g.Until, g.By, g.Why, g.RuleName, "active");

    private sealed record GrantView(
        string Id, string Client, string Host, IReadOnlyList<string> Methods, IReadOnlyList<string> Paths,
        DateTimeOffset Created, DateTimeOffset Until, string By, string Reason, string Rule, string State);

    private static string? Text(JsonElement body, string name) =>
        body.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static List<string>? List(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.String => [value.GetString()!],
            JsonValueKind.Array => [.. value.EnumerateArray().Take(64).Where(v => v.ValueKind == JsonValueKind.String).Select(v => v.GetString()!)],
            _ => null,
        };
    }

    internal static void UpdateGauges(ProxyServices services)
    {
        var store = services.Audit.Store;
        services.Metrics.EventQueueDepth.Set(store.QueueDepth);
        services.Metrics.AuditStoreHealthy.Set(store.Healthy ? 1 : 0);
        if (services.Audit.Central is { } central)
        {
            services.Metrics.ShippingUp.Set(central.Up ? 1 : 0);
            services.Metrics.ShippingBacklog.Set(central.Backlog);
            services.Metrics.ShippingLag.Set(central.Lag.TotalSeconds);
            services.Metrics.EventsShipped.IncTo(central.Shipped);
        }

        // Monotonic totals kept by the store and the cache, exported as counters (IncTo never goes back).
        services.Metrics.EventsDropped.IncTo(store.DroppedEvents);
        services.Metrics.EventsWritten.IncTo(store.WrittenEvents);
        services.Metrics.CertificatesMinted.IncTo(services.Certificates.Minted);
        services.Metrics.CertificateCacheHits.IncTo(services.Certificates.Hits);
        services.Metrics.CertificateCacheEntries.Set(services.Certificates.Count);
        services.Metrics.CaNotAfter.Set(services.Certificates.CaStatus.NotAfter.ToUnixTimeSeconds());
    }

    /// <summary>
    /// A decimal integer of any size; values above the page maximum (including those beyond 2^31-1
    /// or 2^63-1) become the maximum, as documented. Anything else (sign, space, empty) is malformed.
    /// </summary>
    /// <summary>False when <paramref name="value"/> holds a control character or an unpaired surrogate.</summary>
    private static bool IsFilterText(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsControl(c))
            {
                return false;
            }

            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryParseLimit(string text, out int limit)
    {
        limit = 0;
        if (text.Length == 0 || text.AsSpan().ContainsAnyExceptInRange('0', '9'))
        {
            return false;
        }

        limit = long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value < MaxPage ? (int)value : MaxPage;
        return true;
    }

    private static string? Empty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
