using ProxyGuard.Engine.Budgets;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// The policy's budgets: counts the request (and its body's bytes) against every budget whose match applies, and
/// refuses it with <c>budget-exceeded</c> (the budget's name as the rule) when one of them is spent. Runs last before
/// forwarding, so that only requests that would go upstream are counted. A body streamed without a length (not
/// buffered for scanning) is counted when the request ends. The ledger is in memory; with a shared store a request
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

        // A streamed body (or a WebSocket) is counted later, but still needs room now: a spent upload budget refuses it.
        var charge = await ledger.ChargeAsync(applicable, bytes, countAnyway: policy.Mode == PolicyMode.Audit, streamed: later || view.Upgrade, client: client);
        if (later)
        {
            exchange.Hold(new ChargeWhenDone(ledger, applicable, client, exchange));
        }

        return charge.Outcome switch
        {
            BudgetOutcome.Exceeded => exchange.Refuse(new Denial(
                Decision.Refuse(charge.Budget!.Name, Reasons.BudgetExceeded, policy.Mode),
                $"budget '{charge.Budget.Name}' allows {Describe(charge.Limit!)} for {charge.Key}, and that is spent; it frees as the window moves on")),
            BudgetOutcome.Full when charge.OverShare => exchange.Refuse(Denial.Of(Reasons.OverCapacity, charge.Budget!.Name,
                $"this client holds its share of the budget keys the proxy tracks ({ledger.HeldBy(client)} of {ledger.MaxKeys}) and none of them is idle; retry shortly")),
            BudgetOutcome.Full => exchange.Refuse(Denial.Of(Reasons.OverCapacity, charge.Budget!.Name,
                $"the proxy tracks as many budget keys as it may ({ledger.MaxKeys}) and none is idle; retry shortly")),
            _ => null,
        };
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

    public static string Describe(BudgetLimit limit) => limit.Quantity == BudgetQuantity.Requests
        ? $"{limit.Amount} requests per {BudgetLimit.WindowText(limit.Window)}"
        : $"{limit.Amount} upload bytes per {BudgetLimit.WindowText(limit.Window)}";

    /// <summary>Counts a streamed body's bytes when the request ends (released with the exchange's other holds).</summary>
    private sealed class ChargeWhenDone(BudgetLedger ledger, List<(BudgetSpec Budget, string Key)> budgets, string client, ProxyExchange exchange) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                ledger.ChargeAfter(budgets, exchange.RequestBytes, client);
            }
        }
    }
}
