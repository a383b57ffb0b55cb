using ProxyGuard.Audit;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline;

/// <summary>What <see cref="OfflineDecider"/> concluded about one request.</summary>
/// <param name="Decision">The final decision, as the proxy would record it.</param>
/// <param name="Evaluation">The client, CONNECT and rules part of it (the normalised host and path, the tunnel mode).</param>
/// <param name="Message">The explanation a refused client would get (null when allowed).</param>
internal sealed record OfflineOutcome(
    Decision Decision, PolicyEvaluation Evaluation, string? Message, IReadOnlyList<AuditFinding> Findings, IReadOnlyList<string> Injected)
{
    /// <summary>The budgets (with the key each would count under) for a request that would be forwarded.</summary>
    public IReadOnlyList<(BudgetSpec Budget, string Key)> Budgets { get; init; } = [];
}

/// <summary>
/// Runs the proxy's deciding stages on a request described offline (<c>policy explain</c>, <c>policy test</c>), in the
/// proxy's order: the CONNECT host scan and the rules through the same <see cref="PolicyDecider"/>, the network guard
/// where it needs no DNS (IP literals), then the same content, secret-gate and substitution stage classes the live
/// request path runs, on a request view built from the given method, URL, headers and body.
/// </summary>
internal static class OfflineDecider
{
    public static async Task<OfflineOutcome> DecideAsync(
        ProxySnapshot snapshot, string? clientId, string method, TargetUrl url, IReadOnlyList<KeyValuePair<string, string>> headers, byte[]? body,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(url);
        var evaluation = PolicyEvaluator.Evaluate(snapshot.Policy, clientId, method, url);
        var exchange = new ProxyExchange(snapshot, null, null, 0);
        var host = evaluation.NormalizedHost;
        RequestTarget.SplitPathAndQuery(url.RawPath, out var rawPath, out var rawQuery);
        exchange.View = new RequestView(method, new RequestTarget(url.Scheme is "wss" ? "https" : url.Scheme is "ws" ? "http" : url.Scheme, host, url.Port, rawPath, rawQuery),
            headers, snapshot.Policy.RequiresAuthentication ? clientId : null)
        {
            Upgrade = url.Scheme is "ws" or "wss" || headers.Any(h => h.Key.Equals("Upgrade", StringComparison.OrdinalIgnoreCase)),
        };
        if (body is not null)
        {
            exchange.View.SetBody(body);
        }

        var rules = evaluation.Decision!;
        exchange.Decision = rules;
        var tunnelled = url.Scheme is "https" or "wss";
        var clientRefused = rules.Stage == DecisionStage.Client;
        Denial? denial = null;

        // A Host header that names another authority on a plain request: Kestrel refuses an absolute-form request
        // whose Host disagrees (400 bad-request) before anything else.
        var hostHeader = headers.FirstOrDefault(h => h.Key.Equals("Host", StringComparison.OrdinalIgnoreCase)).Value;
        var hostMismatch = hostHeader is { Length: > 0 } && !Stages.TargetStage.AuthorityMatches(hostHeader, host, url.Port);
        if (hostMismatch && !tunnelled)
        {
            denial = exchange.Refuse(Denial.Of(Reasons.BadRequest, "protocol",
                $"the Host header {Denial.HeaderSafe(hostHeader!)} differs from the absolute-form target (refused by the HTTP parser)"));
        }

        // The CONNECT layer (and the target stage, for plain requests) scans the host before the rules.
        if (denial is null && !clientRefused && ContentChecks.ScanHost(snapshot, host) is { } hostFinding)
        {
            exchange.HostCarriesCredential = true;
            denial = exchange.Refuse(hostFinding);
        }

        var refusedByRules = new Denial(rules, $"{method} {url.Scheme}://{host}:{url.Port}{rawPath} is not allowed by the policy");
        var decidedBeforeTunnel = evaluation.Stage is "connect" or "client";
        if (tunnelled)
        {
            // The CONNECT: its rules decision, then the network guard on an IP literal (before any TLS), then, inside
            // the tunnel, a Host header naming another authority (host-mismatch), then the request's rules.
            if (denial is null && decidedBeforeTunnel && rules.Verdict != Verdict.Allow)
            {
                denial = exchange.Refuse(refusedByRules);
            }

            if (denial is null && !clientRefused && NetworkGuard(snapshot, host) is { } blocked)
            {
                denial = exchange.Refuse(blocked);
            }

            if (denial is null && hostMismatch)
            {
                denial = exchange.Refuse(Denial.Of(Reasons.HostMismatch, "tunnel",
                    $"the request names {Denial.HeaderSafe(hostHeader!)} inside a tunnel to {host}:{url.Port} (domain fronting is not allowed)"));
            }
        }

        if (denial is null && !(tunnelled && decidedBeforeTunnel) && rules.Verdict != Verdict.Allow)
        {
            denial = exchange.Refuse(refusedByRules);
        }

        // A tunnel that is not intercepted is never looked into.
        var intercepted = evaluation.Stage != "connect" || evaluation.TunnelMode is null or TunnelMode.Intercept;
        if (denial is null && intercepted && !clientRefused)
        {
            denial = new ContentStage(null).Run(exchange)
                ?? await new SecretGateStage().RunAsync(exchange)
                ?? new SubstitutionStage(null).Run(exchange);
        }

        // A plain request's destination is checked when the proxy dials it: an IP literal is judged here too.
        if (denial is null && !tunnelled && !clientRefused && NetworkGuard(snapshot, host) is { } unreachable)
        {
            denial = exchange.Refuse(unreachable);
        }

        ct.ThrowIfCancellationRequested();
        if (denial?.Decision.Reason == Reasons.BadRequest)
        {
            // Refused before the proxy's stages: nothing else was decided.
            return new OfflineOutcome(denial.Decision, evaluation, denial.Message, [], []);
        }

        var decision = AuditStage.Final(exchange, denial?.Decision);
        return new OfflineOutcome(decision, evaluation, denial?.Message, exchange.Findings,
            decision.Verdict == Verdict.Deny ? [] : exchange.Injected)
        {
            // The budgets the proxy would count this request in (it would refuse it with budget-exceeded once one is spent).
            Budgets = decision.Verdict == Verdict.Deny || !intercepted || evaluation.Stage == "connect" ? [] : BudgetStage.Applicable(exchange, clientId ?? "(source address)"),
        };
    }

    /// <summary>
    /// The network guard where it needs no DNS: an IP literal that is private or special-purpose and not in
    /// network.allow_destinations (a name is judged by the addresses it resolves to, when the proxy dials it).
    /// </summary>
    private static Denial? NetworkGuard(ProxySnapshot snapshot, string host) =>
        System.Net.IPAddress.TryParse(host, out var address) && !Network.DestinationGuard.IsAllowed(address, snapshot.Policy.Network.AllowDestinations, out _)
            ? Denial.Of(Reasons.PrivateDestination, "network", $"{host} is a private or special-purpose address; allow it with network.allow_destinations")
            : null;
}
