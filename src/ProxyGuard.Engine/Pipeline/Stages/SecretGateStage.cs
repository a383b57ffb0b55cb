using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Pipeline.Stages;

/// <summary>
/// The secret gate, before anything is substituted. It refuses:
/// a placeholder of a secret that cannot be resolved now (<c>secret-unavailable</c>, 503);
/// a real secret value anywhere in what the sandbox sent (<c>secret-real-value</c>);
/// a placeholder in a position that is never substituted: the method, the path, the host, a header name, a query
/// parameter name, a cookie name (<c>placeholder-position</c>);
/// any placeholder toward a plain-HTTP destination (<c>secret-plain-http</c>): secrets only travel over verified TLS.
/// </summary>
internal sealed class SecretGateStage : IRequestStage
{
    public async ValueTask<Denial?> RunAsync(ProxyExchange exchange)
    {
        await RefreshExpiredAsync(exchange);
        return Run(exchange);
    }

    public static Denial? Run(ProxyExchange exchange)
    {
        var snapshot = exchange.Snapshot;
        var view = exchange.View;
        var substitutor = snapshot.Substitutor;
        if (substitutor.IsEmpty && snapshot.Unavailable.Count == 0)
        {
            return null;
        }

        foreach (var text in snapshot.Unavailable.Count == 0 ? [] : CarriedTextsAndBody(view))
        {
            if (snapshot.FindUnavailablePlaceholder(text) is { } missing)
            {
                return exchange.Refuse(Denial.Of(Reasons.SecretUnavailable, "secrets",
                    $"secret '{missing.Name}' cannot be resolved on the proxy host right now"));
            }
        }

        if (substitutor.IsEmpty)
        {
            return null;
        }

        // One pass over all the fields first; only a hit is located field by field (for the message).
        var fields = Positions(view, includeValues: true).ToList();
        var joined = string.Join('\n', fields.Select(f => f.Text));
        foreach (var (text, where) in substitutor.FindRealValue(joined) is null ? [] : fields)
        {
            if (substitutor.FindRealValue(text) is { } leaked)
            {
                return exchange.Refuse(Denial.Of(Reasons.SecretRealValue, "secrets",
                    $"{where} carries the real value of secret '{leaked}'; the sandbox must only ever hold its placeholder"));
            }
        }

        if (view.Body is { } body && substitutor.FindRealValue(body.Span) is { } inBody)
        {
            return exchange.Refuse(Denial.Of(Reasons.SecretRealValue, "secrets",
                $"the request body carries the real value of secret '{inBody}'; the sandbox must only ever hold its placeholder"));
        }

        // Whether the head carries a placeholder at all, in any encoding the matcher knows (a superset of what
        // substitution recognises: Basic credentials decoded by substitution's own decoder, the proxy's header included). Without one, the position
        // and plain-HTTP checks have nothing to find and substitution skips the head.
        var extras = HeadExtras(view).ToList();
        exchange.HeadCarriesPlaceholder = substitutor.FindPlaceholderAnywhere(extras.Count == 0 ? joined : joined + "\n" + string.Join('\n', extras)) is not null;
        if (exchange.HeadCarriesPlaceholder)
        {
            var names = Positions(view, includeValues: false).ToList();
            foreach (var (text, where) in substitutor.FindPlaceholderAnywhere(string.Join('\n', names.Select(f => f.Text))) is null ? [] : names)
            {
                if (substitutor.FindPlaceholderAnywhere(text) is { } misplaced)
                {
                    return exchange.Refuse(Denial.Of(Reasons.PlaceholderPosition, "secrets",
                        $"{where} carries the placeholder of secret '{misplaced}'; placeholders are only substituted in header, query, cookie and body values"));
                }
            }
        }

        if (view.Target.Scheme != "https")
        {
            // Over plain HTTP a placeholder goes nowhere, unless its secret opts in (allow_plain_http): the
            // substitution stage then decides it like any other.
            var carried = exchange.HeadCarriesPlaceholder ? CarriedTexts(view).Select(t => substitutor.FindPlaceholderAnywhere(t)) : [];
            foreach (var plain in carried.Append(view.Body is { } plainBody ? substitutor.FindPlaceholderAnywhere(plainBody.Span) : null))
            {
                if (plain is not null && !AllowsPlainHttp(snapshot, plain))
                {
                    return exchange.Refuse(Denial.Of(Reasons.SecretPlainHttp, "secrets",
                        $"the request carries the placeholder of secret '{plain}' toward a plain-HTTP destination; secrets are only substituted over verified TLS"));
                }
            }
        }

        return null;
    }

    /// <summary>Head texts that <see cref="Positions"/> leaves out: the proxy credential and decoded Basic credentials.</summary>
    private static IEnumerable<string> HeadExtras(RequestView view)
    {
        foreach (var (name, value) in view.Headers)
        {
            if (name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                yield return value;
            }

            if (Substitutor.DecodeBasicCredentials(value) is { } decoded)
            {
                yield return decoded;
            }
        }
    }

    /// <summary>
    /// Every sandbox-controlled text of the request with where it is: positions that are never substituted (method,
    /// path, host, header names, query parameter names, cookie names) and, with <paramref name="includeValues"/>,
    /// the value positions too (header values, the raw query).
    /// </summary>
    private static IEnumerable<(string Text, string Where)> Positions(RequestView view, bool includeValues)
    {
        yield return (view.Method, "the request method");
        yield return (view.Target.RawPath, "the URL path");
        yield return (view.Target.Host, "the host name");
        foreach (var (name, value) in view.Headers)
        {
            yield return (name, "a request header name");
            if (name.Equals("Cookie", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var cookieName in CookieNames(value))
                {
                    yield return (cookieName, "a cookie name");
                }
            }

            if (includeValues && !name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                yield return (value, $"the {name} header");
            }
        }

        foreach (var parameterName in QueryNames(view.Target.RawQuery))
        {
            yield return (parameterName, "a query parameter name");
        }

        if (includeValues && view.Target.RawQuery.Length > 0)
        {
            yield return (view.Target.RawQuery, "the query string");
        }
    }

    /// <summary>Header names and values (Basic credentials decoded), the query and the path: where a placeholder can be carried as text in the head.</summary>
    private static IEnumerable<string> CarriedTexts(RequestView view)
    {
        yield return view.Target.RawPath;
        yield return view.Target.RawQuery;
        foreach (var (name, value) in view.Headers)
        {
            yield return name;
            yield return value;
            if (Substitutor.DecodeBasicCredentials(value) is { } decoded)
            {
                yield return decoded;
            }
        }
    }

    /// <summary>The head texts and the body as text (only where a secret is unavailable or expired: rare).</summary>
    private static IEnumerable<string> CarriedTextsAndBody(RequestView view) =>
        view.Body is { } body ? CarriedTexts(view).Append(System.Text.Encoding.UTF8.GetString(body.Span)) : CarriedTexts(view);

    private static bool AllowsPlainHttp(Runtime.ProxySnapshot snapshot, string secret) =>
        snapshot.Bindings.Any(b => b.Name == secret && b.AllowPlainHttp);

    internal static IEnumerable<string> QueryNames(string rawQuery)
    {
        if (rawQuery.Length == 0)
        {
            yield break;
        }

        foreach (var part in rawQuery.Split('&', ';'))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            yield return eq < 0 ? part : part[..eq];
        }
    }

    internal static IEnumerable<string> CookieNames(string cookieHeader)
    {
        foreach (var part in cookieHeader.Split(';', ','))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            yield return (eq < 0 ? part : part[..eq]).Trim();
        }
    }

    /// <summary>
    /// A Vault value is refreshed in the background while it is used; one left unused for longer than TTL + grace has
    /// expired although Vault may be healthy. Before the gate, fetch such a value again when this request carries its
    /// placeholder (a failure leaves it expired: substitution then fails closed with <c>secret-unavailable</c>).
    /// </summary>
    private static async Task RefreshExpiredAsync(ProxyExchange exchange)
    {
        List<string>? carried = null;
        foreach (var binding in exchange.Snapshot.Bindings)
        {
            if (binding.Value.IsAvailable)
            {
                continue;
            }

            carried ??= [.. CarriedTextsAndBody(exchange.View)];
            if (!carried.Any(t => t.Contains(binding.Placeholder, StringComparison.Ordinal)))
            {
                continue;
            }

            try
            {
                await binding.Value.EnsureFreshAsync(exchange.Aborted);
            }
            catch (SecretUnavailableException)
            {
                // Substitution reveals it and denies the request.
            }
        }
    }
}
