using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;
using Yarp.ReverseProxy.Forwarder;

namespace ProxyGuard.Engine.Pipeline;

/// <summary>
/// The proxy's request delegate: every HTTP request on the proxy listener (inside intercepted tunnels and plain
/// absolute-form requests) runs the stages below in order, each in its own file; the first refusal ends the request,
/// and the audit stage records the outcome once.
/// </summary>
internal sealed class ProxyRequestDelegate
{
    private readonly ProxyServices _services;
    private readonly IRequestStage[] _stages;
    private readonly AuditStage _audit;

    public ProxyRequestDelegate(ProxyServices services, IHttpForwarder forwarder, HttpMessageInvoker client)
    {
        _services = services;
        _stages =
        [
            new AuditGateStage(services.Audit),
            new StrictHttpStage(),
            new TargetStage(services),
            new RulesStage(services),
            new BodyStage(services.Budgets.Bodies),
            new ContentStage(services.Metrics, services.Budgets.Scans),
            new SecretGateStage(),
            new SubstitutionStage(services.Metrics),
            new BudgetStage(services.Ledger),
            new ForwardStage(services, forwarder, client),
        ];
        _audit = new AuditStage(services);
    }

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Features.Get<ProxyConnectionFeature>()?.Tunnel?.Refusal is { } refusal)
        {
            await ExplainRefusedTunnelAsync(context, refusal);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        var exchange = new ProxyExchange(_services.Runtime.Current, context, context.Features.Get<ProxyConnectionFeature>(), started);
        try
        {
            Denial? denial = null;
            foreach (var stage in _stages)
            {
                denial = await stage.RunAsync(exchange);
                if (denial is not null)
                {
                    break;
                }
            }

            if (denial is null)
            {
                var decision = AuditStage.Final(exchange, null);
                await _audit.RecordAsync(exchange, decision, context.Response.StatusCode);
                return;
            }

            await DenyAsync(exchange, denial);
        }
        catch (Exception ex) when (!exchange.Recorded)
        {
            // Every request gets its event, whichever stage failed and however: one that already reached the upstream
            // (a failure while answering) above all. The failure itself is left to the host (logged, 500 or reset).
            var reason = ex is OperationCanceledException && context.RequestAborted.IsCancellationRequested ? Reasons.ClientCanceled : Reasons.ProxyError;
            var status = context.Response.HasStarted ? context.Response.StatusCode : StatusCodes.Status500InternalServerError;
            var mode = exchange.Snapshot.Policy.Mode;
            var decision = exchange.Decision is null
                ? new Decision(Verdict.Deny, "proxy", reason, DecisionStage.Upstream, mode) // before the rules decided: not forwarded
                : AuditStage.Final(exchange, Decision.Allow("proxy", reason, DecisionStage.Upstream, mode));
            await _audit.RecordAsync(exchange, decision, status);
            throw;
        }
        finally
        {
            exchange.ReleaseHeld(); // every budget lease the stages took, on every path
            exchange.Reservation?.Dispose(); // unused only when the request failed before its event (it is then logged by the host)
            _services.Metrics.RequestDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>
    /// The first request inside a refused CONNECT's TLS (readable denials): the refusal, then the connection closes.
    /// Its event was recorded when the CONNECT was refused; the request itself is neither read further nor forwarded.
    /// </summary>
    private async Task ExplainRefusedTunnelAsync(HttpContext context, Denial refusal)
    {
        var response = context.Response;
        response.StatusCode = refusal.Status;
        response.Headers[Denial.DecisionHeader] = "deny";
        response.Headers[Denial.RuleHeader] = Denial.HeaderSafe(refusal.Rule);
        response.Headers[Denial.ReasonHeader] = Denial.HeaderSafe(refusal.Reason);
        response.Headers.Connection = "close";
        response.ContentType = "text/plain; charset=utf-8";
        await response.WriteAsync(refusal.Body(_services.Runtime.Current.Policy.FilePath), context.RequestAborted);
    }

    private async Task DenyAsync(ProxyExchange exchange, Denial denial)
    {
        var context = exchange.Http!;
        var upstreamFailure = AuditStage.IsUpstreamFailure(denial.Decision);
        // After an upgrade (a WebSocket message refused) the client got 101 and then a close frame: the event says 101.
        var status = context.Response.HasStarted ? context.Response.StatusCode : denial.Status;
        var recorded = await _audit.RecordAsync(exchange, AuditStage.Final(exchange, denial.Decision), status);
        if (context.Response.HasStarted)
        {
            return;
        }

        var response = context.Response;
        // A refusal whose event cannot be stored is still a refusal, but says so: the audit store failed.
        response.StatusCode = recorded || upstreamFailure ? denial.Status : 503;
        response.Headers[Denial.DecisionHeader] = upstreamFailure ? "error" : "deny";
        response.Headers[Denial.RuleHeader] = Denial.HeaderSafe(denial.Rule);
        response.Headers[Denial.ReasonHeader] = Denial.HeaderSafe(denial.Reason);
        if (denial.Decision.Reason == Reasons.AuthRequired)
        {
            response.Headers[HeaderNames.ProxyAuthenticate] = "Basic realm=\"proxyguard\"";
            if (context.Request.Protocol == "HTTP/1.1" && exchange.Connection?.Tunnel is null)
            {
                response.Headers.Connection = "close";
            }
        }

        response.ContentType = "text/plain; charset=utf-8";
        await response.WriteAsync(denial.Body(exchange.Snapshot.Policy.FilePath));
    }
}
