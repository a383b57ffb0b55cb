using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// Swaps placeholders for real values in the outgoing request, only in value positions (header values, query
/// values, body) and only toward the hosts each secret is bound to. The request view keeps what the sandbox sent.
/// </summary>
internal sealed class SubstitutionStage(Runtime.ProxyMetrics? metrics) : IRequestStage
{
    public ValueTask<Denial?> RunAsync(ProxyExchange exchange) => ValueTask.FromResult(Run(exchange));

    public Denial? Run(ProxyExchange exchange)
    {
        var substitutor = exchange.Snapshot.Substitutor;
        if (substitutor.IsEmpty)
        {
            return null;
        }

        try
        {
            return Substitute(exchange, substitutor);
        }
        catch (SecretUnavailableException ex)
        {
            return exchange.Refuse(Denial.Of(Reasons.SecretUnavailable, "secrets",
                $"a secret cannot be resolved on the proxy host right now ({ex.Reason})"));
        }
    }

    private Denial? Substitute(ProxyExchange exchange, Substitutor substitutor)
    {
        var view = exchange.View;
        var outgoing = exchange.Outgoing;
        var target = new SubstitutionTarget(view.Target.Host, VerifiedTls: view.Target.Scheme == "https");
        var host = target.Host;
        var names = new List<string>();
        var headNames = exchange.HeadCarriesPlaceholder ? view.Headers.Select(h => h.Key).Distinct(StringComparer.OrdinalIgnoreCase).ToList() : [];
        foreach (var name in headNames)
        {
            if (name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var values = outgoing.Values(view, name);
            var changed = false;
            for (var i = 0; i < values.Length; i++)
            {
                var result = substitutor.SubstituteHeader(name, values[i], target);
                if (result.IsMisuse)
                {
                    return Misuse(exchange, result, host, $"the {name} header");
                }

                if (result.Injected.Count > 0)
                {
                    values[i] = result.Value;
                    names.AddRange(result.Injected);
                    changed = true;
                }
            }

            if (changed)
            {
                outgoing.SetHeader(name, values);
            }
        }

        if (exchange.HeadCarriesPlaceholder && outgoing.RawQuery.Length > 0)
        {
            var result = substitutor.SubstituteQuery(outgoing.RawQuery, target);
            if (result.IsMisuse)
            {
                return Misuse(exchange, result, host, "the query string");
            }

            if (result.Injected.Count > 0)
            {
                outgoing.RawQuery = result.Value;
                names.AddRange(result.Injected);
            }
        }

        if (outgoing.CurrentBody(view) is { } body)
        {
            var result = substitutor.SubstituteBody(body.Span, view.ContentType, target, out var newBody);
            if (result.IsMisuse)
            {
                return Misuse(exchange, result, host, "the request body");
            }

            if (newBody is not null)
            {
                outgoing.SetBody(newBody, decoded: false);
                names.AddRange(result.Injected);
            }
        }

        if (names.Count > 0)
        {
            // Ask for an identity-encoded response so that the real value can be scrubbed from it as a stream.
            outgoing.AskIdentityEncoding = true;
            exchange.AddInjected(names);
            foreach (var name in names.Distinct())
            {
                metrics?.SecretInjections.WithLabels(name).Inc();
            }
        }

        return null;
    }

    private static Denial? Misuse(ProxyExchange exchange, SubstitutionResult result, string host, string where)
    {
        var reason = Reasons.Find(result.Reason) ?? Reasons.SecretMisuse;
        var message = reason == Reasons.PlaceholderPosition
            ? $"{where} carries the placeholder of secret '{result.MisusedSecret}' in a name position; placeholders are only substituted in values"
            : reason == Reasons.SecretPlainHttp
                ? $"{where} carries the placeholder of secret '{result.MisusedSecret}' toward plain-HTTP {host}; secrets are only substituted over verified TLS"
                : $"{where} carries the placeholder of secret '{result.MisusedSecret}', which is not bound to {host} in that location";
        return exchange.Refuse(Denial.Of(reason, "secrets", message));
    }
}
