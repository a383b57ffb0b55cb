namespace ProxyGuard.Engine.Pipeline;

/// <summary>
/// What the stages change in the request on its way upstream (redacted header values, substituted secrets, a
/// rewritten query or body). Starts as "unchanged"; the forward stage applies it to the real request.
/// </summary>
internal sealed class OutgoingRequest
{
    private readonly Dictionary<string, string[]> _headers = new(StringComparer.OrdinalIgnoreCase);

    public OutgoingRequest(RequestView view)
    {
        RawQuery = view.Target.RawQuery;
    }

    /// <summary>Headers whose values were replaced (all values of the name, in order).</summary>
    public IReadOnlyDictionary<string, string[]> ChangedHeaders => _headers;

    public string RawQuery { get; set; }

    /// <summary>A replacement body (null: the body is forwarded as read).</summary>
    public ReadOnlyMemory<byte>? Body { get; private set; }

    /// <summary>True when the body was decoded while rewriting it (its Content-Encoding must go).</summary>
    public bool BodyDecoded { get; private set; }

    /// <summary>True when a secret was substituted: the response is then asked for without compression.</summary>
    public bool AskIdentityEncoding { get; set; }

    /// <summary>The current values of a header: changed ones if any, else what <paramref name="view"/> holds.</summary>
    public string[] Values(RequestView view, string name)
    {
        if (_headers.TryGetValue(name, out var changed))
        {
            return changed;
        }

        var values = new List<string>();
        foreach (var (key, value) in view.Headers)
        {
            if (key.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                values.Add(value);
            }
        }

        return [.. values];
    }

    public void SetHeader(string name, string[] values) => _headers[name] = values;

    public void SetBody(ReadOnlyMemory<byte> body, bool decoded)
    {
        Body = body;
        BodyDecoded |= decoded;
    }

    /// <summary>The body as it will be sent (the replacement, else what was read).</summary>
    public ReadOnlyMemory<byte>? CurrentBody(RequestView view) => Body ?? view.Body;
}
