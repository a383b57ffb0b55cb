using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Inspection;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// The content scan of everything the sandbox sent, placeholders included (before substitution): the method, the
/// path, every header name and value, the query and the body. A finding with action
/// <c>redact</c> rewrites the outgoing header, query or body; <c>deny</c> refuses.
/// </summary>
internal sealed class ContentStage(Runtime.ProxyMetrics? metrics, Runtime.ScanGate? gate = null) : IRequestStage
{
    /// <summary>Runs the scans in one of the process's scan slots (<c>503 over-capacity</c> when none comes free in time).</summary>
    public async ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        if (gate is null || exchange.Snapshot.Scanner is null)
        {
            return Run(exchange);
        }

        IDisposable? slot;
        try
        {
            slot = await gate.EnterAsync(exchange.Aborted);
        }
        catch (OperationCanceledException)
        {
            return exchange.Refuse(new Denial(new Decision(Verdict.Deny, "content", Reasons.ClientCanceled, DecisionStage.Content, exchange.Snapshot.Policy.Mode),
                "the client went away while its request waited to be scanned"));
        }

        if (slot is null)
        {
            return exchange.Refuse(Denial.Of(Reasons.OverCapacity, Runtime.ProcessBudgets.ScansName,
                $"the proxy is already running as many content scans as it may at once ({gate.Capacity}); retry shortly"));
        }

        using (slot)
        {
            return Run(exchange);
        }
    }

    public Denial? Run(ProxyExchange exchange)
    {
        var scanner = exchange.Snapshot.Scanner;
        if (scanner is null)
        {
            return null;
        }

        var content = exchange.Snapshot.Policy.Content;
        var view = exchange.View;
        var target = view.Target;
        var host = target.Host;

        // One budget for the whole request: every field below scans against the same deadline.
        var deadline = scanner.StartDeadline();
        if (Check(exchange, scanner.ScanText(view.Method, ScanLocation.Header, host, deadline, exchange.Aborted), "method", "the request method") is { } methodDenial)
        {
            return methodDenial;
        }

        if (Check(exchange, scanner.ScanText(target.RawPath, ScanLocation.Query, host, deadline, exchange.Aborted), "path", "the URL path") is { } pathDenial)
        {
            return pathDenial;
        }

        if (content.ScanHeaders && ScanHeaders(exchange, scanner, deadline) is { } headerDenial)
        {
            return headerDenial;
        }

        if (content.ScanQuery && target.RawQuery.Length > 0)
        {
            var result = scanner.ScanQuery(target.RawQuery, host, deadline, exchange.Aborted);
            if (Check(exchange, result, "query", "the query string") is { } queryDenial)
            {
                return queryDenial;
            }

            if (result.RewrittenText is not null)
            {
                exchange.Outgoing.RawQuery = result.RewrittenText;
            }
        }

        if (content.ScanBody && view.Body is { } body)
        {
            var result = scanner.ScanBody(body, view.ContentEncoding is { Length: > 0 } ce ? ce : null, view.ContentType, host, deadline, exchange.Aborted);
            if (Check(exchange, result, "body", "the request body") is { } bodyDenial)
            {
                return bodyDenial;
            }

            if (result.RewrittenBody is not null)
            {
                exchange.Outgoing.SetBody(result.RewrittenBody, decoded: true);
            }
        }

        return null;
    }

    private Denial? ScanHeaders(ProxyExchange exchange, ContentScanner scanner, ScanDeadline deadline)
    {
        var view = exchange.View;
        var host = view.Target.Host;
        string? lastName = null;
        foreach (var (name, value) in view.Headers)
        {
            if (name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase) || name.Equals("Host", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!name.Equals(lastName, StringComparison.OrdinalIgnoreCase)
                && Check(exchange, scanner.ScanText(name, ScanLocation.Header, host, deadline, exchange.Aborted), "header", "a request header name") is { } nameDenial)
            {
                return nameDenial;
            }

            lastName = name;
            var result = scanner.ScanText(value, ScanLocation.Header, host, deadline, exchange.Aborted);
            if ((result.Findings.Count > 0 || result.Blocked) && Check(exchange, result, "header", $"the {name} header") is { } valueDenial)
            {
                return valueDenial;
            }

            if (result.RewrittenText is not null)
            {
                var values = exchange.Outgoing.Values(view, name);
                var index = Array.IndexOf(values, value);
                if (index >= 0)
                {
                    values[index] = result.RewrittenText;
                    exchange.Outgoing.SetHeader(name, values);
                }
            }
        }

        return null;
    }

    /// <summary>Records the findings of one scan and returns the denial it calls for (null in audit mode or when clean).</summary>
    private Denial? Check(ProxyExchange exchange, ScanResult result, string location, string where)
    {
        if (result.Findings.Count == 0 && !result.Blocked)
        {
            return null;
        }

        foreach (var finding in result.Findings)
        {
            var action = ContentChecks.ActionName(finding.Action);
            exchange.Findings.Add(new Audit.AuditFinding(finding.Detector, location, action));
            metrics?.Findings.WithLabels(finding.Detector, action).Inc();
        }

        if (!result.Blocked)
        {
            return null;
        }

        var mode = exchange.Snapshot.Policy.Mode;
        if (result.ErrorKind == ScanErrorKind.BudgetExceeded)
        {
            return exchange.Refuse(Denial.Of(Reasons.ScanBudgetExceeded, "content",
                $"scanning {where} took longer than the per-request scan budget, so it cannot be forwarded unscanned"));
        }

        if (result.ErrorKind == ScanErrorKind.CapacityExceeded)
        {
            return exchange.Refuse(Denial.Of(Reasons.OverCapacity, Runtime.ProcessBudgets.DecodingName,
                $"the proxy is decompressing as much as it may at once, so {where} cannot be decoded for scanning now; retry shortly"));
        }

        if (result.ErrorKind == ScanErrorKind.Canceled)
        {
            return exchange.Refuse(new Denial(new Decision(Verdict.Deny, "content", Reasons.ClientCanceled, DecisionStage.Content, mode),
                "the client went away while its request was scanned"));
        }

        if (result.Error is not null)
        {
            return exchange.Refuse(new Denial(Decision.Refuse("content", Reasons.Undecodable, mode),
                $"{where} could not be decoded for scanning: {result.Error}"));
        }

        var finding0 = result.Findings.First(f => f.Action == ContentAction.Deny);
        return exchange.Refuse(new Denial(Decision.Refuse(finding0.Detector, Reasons.ContentFinding, mode),
            $"{where} contains what looks like a credential (detector {finding0.Detector})"));
    }
}
