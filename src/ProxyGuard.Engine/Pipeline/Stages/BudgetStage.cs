using ProxyGuard.Engine.Budgets;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// The policy's budgets: counts the request (and its body's bytes) against every budget whose match applies, and
/// refuses it with <c>budget-exceeded</c> (the budget's name as the rule) when one of them is spent. Runs last before
/// forwarding, so that only requests that would go upstream are counted. A body streamed without a length (not
/// buffered for scanning) and a WebSocket's frames from the client are counted while they flow, and cut off at the
/// limit (see <see cref="StreamedUpload"/>). The ledger is in memory; with a shared store a request
/// waits for the store only when this replica's lease for a budget lacks units (one round trip, bounded).
/// </summary>
internal sealed class BudgetStage(BudgetLedger? ledger) : IRequestStage
{
    public async ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        var policy = exchange.Snapshot.Policy;
        if (ledger is null || policy.Budgets.Count == 0)
        {
            return null;
        }

        var client = ClientOf(exchange);
        var applicable = Applicable(exchange, client);
        if (applicable.Count == 0)
        {
            return null;
        }

        var view = exchange.View;
        long bytes = 0;
        var later = false;
        if (view.Body is { } body)
        {
            bytes = body.Length;
        }
        else if (exchange.Http?.Request.ContentLength is { } declared)
        {
            bytes = declared;
        }
        else if (exchange.Http is { } http && !view.Upgrade
            && (http.Request.Headers.ContainsKey("Transfer-Encoding")
                || http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true))
        {
            later = true; // a streamed body without a length (chunked, or HTTP/2 without content-length): counted when it ends
        }

        // A streamed body (or a WebSocket) is counted while it flows, but still needs room now: a spent upload budget refuses it.
        var audit = policy.Mode == PolicyMode.Audit;
        var charge = await ledger.ChargeAsync(applicable, bytes, countAnyway: audit, streamed: later || view.Upgrade, client: client);
        if ((later || view.Upgrade) && CountsBytes(applicable)
            && (charge.Outcome == BudgetOutcome.Admitted || (audit && charge.Outcome == BudgetOutcome.Exceeded)))
        {
            if (later)
            {
                exchange.Upload = new StreamedUpload(ledger, applicable, client, audit);
                exchange.Http!.Request.Body = new BudgetedBodyStream(exchange.Http.Request.Body, exchange.Upload);
            }
            else if (view.Upgrade)
            {
                exchange.Upload = new StreamedUpload(ledger, applicable, client, audit); // the relay counts the client's frames
            }
        }

        return charge.Outcome switch
        {
            BudgetOutcome.Exceeded => exchange.Refuse(Spent(charge, policy.Mode)),
            BudgetOutcome.Full when charge.OverShare => exchange.Refuse(Denial.Of(Reasons.OverCapacity, charge.Budget!.Name,
                $"this client holds its share of the budget keys the proxy tracks ({ledger.HeldBy(client)} of {ledger.MaxKeys}) and none of them is idle; retry shortly")),
            BudgetOutcome.Full => exchange.Refuse(Denial.Of(Reasons.OverCapacity, charge.Budget!.Name,
                $"the proxy tracks as many budget keys as it may ({ledger.MaxKeys}) and none is idle; retry shortly")),
            _ => null,
        };
    }

    /// <summary>
    /// The refusal for a spent budget (<see cref="BudgetOutcome.Exceeded"/>); <paramref name="cutOff"/>: it stopped a
    /// transfer under way (a streamed body or a WebSocket) rather than a request before it went.
    /// </summary>
    public static Denial Spent(BudgetCharge charge, PolicyMode mode, bool cutOff = false)
    {
        if (charge.Outcome != BudgetOutcome.Exceeded)
        {
            return Denial.Of(Reasons.OverCapacity, charge.Budget?.Name ?? "budgets",
                "the proxy tracks as many budget keys as it may and none is idle, so the upload could not be counted and was cut off; retry shortly");
        }

        return new Denial(
            Decision.Refuse(charge.Budget!.Name, Reasons.BudgetExceeded, mode),
            $"budget '{charge.Budget.Name}' allows {Describe(charge.Limit!)} for {charge.Key}, and that is spent{(cutOff ? " (the upload was cut off when it reached the limit)" : "")}; it frees as the window moves on");
    }

    /// <summary>The budgets (with their keys) that count this request: the rule that allowed it, its client and host.</summary>
    public static List<(BudgetSpec Budget, string Key)> Applicable(ProxyExchange exchange, string client)
    {
        var policy = exchange.Snapshot.Policy;
        var view = exchange.View;
        var rule = exchange.Decision?.Rule ?? CompiledPolicy.DefaultRuleName;
        var host = HostNormalizer.TryNormalize(view.Target.Host, out var normalized, out _) ? normalized : view.Target.Host;
        var result = new List<(BudgetSpec, string)>();
        foreach (var budget in policy.BudgetsFor(view.ClientId, host, rule))
        {
            result.Add((budget, budget.KeyFor(client, host, rule)));
        }

        return result;
    }

    /// <summary>The client dimension: the client id, or the source address when the policy has no clients.</summary>
    public static string ClientOf(ProxyExchange exchange) =>
        exchange.View.ClientId ?? (exchange.Http?.Connection.RemoteIpAddress is { } ip
            ? (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip).ToString()
            : "(source address)");

    private static bool CountsBytes(List<(BudgetSpec Budget, string Key)> applicable) =>
        applicable.Exists(a => a.Budget.Limits.Any(l => l.Quantity == BudgetQuantity.UploadBytes));

    public static string Describe(BudgetLimit limit) => limit.Quantity == BudgetQuantity.Requests
        ? $"{limit.Amount} requests per {BudgetLimit.WindowText(limit.Window)}"
        : $"{limit.Amount} upload bytes per {BudgetLimit.WindowText(limit.Window)}";
}
