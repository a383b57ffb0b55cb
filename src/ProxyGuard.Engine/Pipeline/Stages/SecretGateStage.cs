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

        // One UTF-8 buffer of every head text, '\n'-separated: the names (never substituted), then the values, then the
        // proxy credential and decoded Basic credentials. Each check below is one matcher pass over a part of it; only
        // a hit is located field by field (for the message).
        using var head = new HeadText();
        WriteNames(view, head);
        var namesEnd = head.Length;
        WriteValues(view, head);
        var valuesEnd = head.Length;
        WriteExtras(view, head);
        if (substitutor.FindRealValue(head.Span[..valuesEnd]) is not null)
        {
            foreach (var (text, where) in Positions(view, includeValues: true))
            {
                if (substitutor.FindRealValue(text) is { } leaked)
                {
                    return exchange.Refuse(Denial.Of(Reasons.SecretRealValue, "secrets",
                        $"{where} carries the real value of secret '{leaked}'; the sandbox must only ever hold its placeholder"));
                }
            }
        }

        if (view.Body is { } body && substitutor.FindRealValue(body.Span) is { } inBody)
        {
            return exchange.Refuse(Denial.Of(Reasons.SecretRealValue, "secrets",
                $"the request body carries the real value of secret '{inBody}'; the sandbox must only ever hold its placeholder"));
        }

        // Whether the head carries a placeholder at all, in any encoding the matcher knows (a superset of what
        // substitution recognises: Basic credentials decoded by substitution's own decoder, the proxy's header included).
        // Without one, the position and plain-HTTP checks have nothing to find and substitution skips the head.
        exchange.HeadCarriesPlaceholder = substitutor.FindPlaceholderAnywhere(head.Span) is not null;
        if (exchange.HeadCarriesPlaceholder && substitutor.FindPlaceholderAnywhere(head.Span[..namesEnd]) is not null)
        {
            foreach (var (text, where) in Positions(view, includeValues: false))
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

    /// <summary>The texts <see cref="Positions"/> yields without values (never substituted), written into <paramref name="head"/>.</summary>
    private static void WriteNames(RequestView view, HeadText head)
    {
        head.Add(view.Method);
        head.Add(view.Target.RawPath);
        head.Add(view.Target.Host);
        foreach (var (name, value) in view.Headers)
        {
            head.Add(name);
            if (name.Equals("Cookie", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var range in value.AsSpan().SplitAny(";,"))
                {
                    var part = value.AsSpan(range);
                    var eq = part.IndexOf('=');
                    head.Add((eq < 0 ? part : part[..eq]).Trim());
                }
            }
        }

        if (view.Target.RawQuery.Length > 0)
        {
            var query = view.Target.RawQuery.AsSpan();
            foreach (var range in query.SplitAny("&;"))
            {
                var part = query[range];
                var eq = part.IndexOf('=');
                head.Add(eq < 0 ? part : part[..eq]);
            }
        }
    }

    /// <summary>The value texts <see cref="Positions"/> yields with <c>includeValues</c>: header values (not the proxy credential) and the raw query.</summary>
    private static void WriteValues(RequestView view, HeadText head)
    {
        foreach (var (name, value) in view.Headers)
        {
            if (!name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                head.Add(value);
            }
        }

        head.Add(view.Target.RawQuery);
    }

    /// <summary>Head texts that <see cref="Positions"/> leaves out: the proxy credential and decoded Basic credentials.</summary>
    private static void WriteExtras(RequestView view, HeadText head)
    {
        foreach (var (name, value) in view.Headers)
        {
            if (name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase))
            {
                head.Add(value);
            }

            if (Substitutor.DecodeBasicCredentials(value) is { } decoded)
            {
                head.Add(decoded);
            }
        }
    }

    /// <summary>
    /// Texts as UTF-8, each followed by '\n' (so no match spans two texts), in one pooled buffer. Cleared when returned:
    /// it may hold what the sandbox sent, a real value included.
    /// </summary>
    private sealed class HeadText : IDisposable
    {
        private byte[] _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1024);

        public int Length { get; private set; }

        public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, Length);

        public void Add(ReadOnlySpan<char> text)
        {
            var needed = Length + System.Text.Encoding.UTF8.GetMaxByteCount(text.Length) + 1;
            if (needed > _buffer.Length)
            {
                var larger = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(needed, _buffer.Length * 2));
                Span.CopyTo(larger);
                Return();
                _buffer = larger;
            }

            Length += System.Text.Encoding.UTF8.GetBytes(text, _buffer.AsSpan(Length));
            _buffer[Length++] = (byte)'\n';
        }

        public void Dispose()
        {
            Return();
            _buffer = [];
        }

        private void Return()
        {
            if (_buffer.Length > 0)
            {
                _buffer.AsSpan(0, Length).Clear();
                System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
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
