using ProxyGuard.Engine.Forwarding;

namespace ProxyGuard.Engine.Pipeline;

/// <summary>
/// One request exactly as the sandbox sent it, parsed once and never changed: the method, the target, every header
/// (name and value, in order), the raw query and, once read, the body. Every deciding stage and the audit event
/// factory read this view; what goes upstream is built separately (<see cref="OutgoingRequest"/>), so a substituted
/// secret can never flow back into a decision or a record.
/// </summary>
internal sealed class RequestView
{
    public RequestView(string method, RequestTarget target, IReadOnlyList<KeyValuePair<string, string>> headers, string? clientId)
    {
        Method = method;
        Target = target;
        Headers = headers as KeyValuePair<string, string>[] ?? [.. headers];
        ClientId = clientId;
    }

    public string Method { get; }

    /// <summary>Scheme, normalised host, port, raw path and raw query.</summary>
    public RequestTarget Target { get; }

    /// <summary>Every request header as sent, one entry per value (a repeated header appears repeatedly).</summary>
    /// <remarks>An array, not an interface: every stage walks it, and an array's enumeration allocates nothing. Never written after construction.</remarks>
    public KeyValuePair<string, string>[] Headers { get; }

    public string? ClientId { get; }

    /// <summary>True for a protocol upgrade (WebSocket, extended CONNECT).</summary>
    public bool Upgrade { get; init; }

    /// <summary>The buffered body, when it had to be read (scanning or substitution); null otherwise.</summary>
    public ReadOnlyMemory<byte>? Body { get; private set; }

    /// <summary>The media type. A request with more than one <c>Content-Type</c> field never gets this far (strict HTTP refuses it).</summary>
    public string? ContentType => Header("Content-Type");

    /// <summary>
    /// Every content-coding, from all <c>Content-Encoding</c> fields in order (RFC 9110 5.3: two fields are one list),
    /// empty members dropped; null when there is none. What the upstream decodes is what the scan decodes.
    /// </summary>
    public string? ContentEncoding => ListHeader("Content-Encoding");

    /// <summary>
    /// A list header read as the upstream reads it: all its fields joined, their empty members dropped
    /// (<c>Content-Encoding: identity</c> then <c>Content-Encoding: gzip</c> is <c>identity, gzip</c>); null when none is left.
    /// </summary>
    public string? ListHeader(string name)
    {
        List<string>? members = null;
        foreach (var (key, value) in Headers)
        {
            if (!key.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var member in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                (members ??= []).Add(member);
            }
        }

        return members is null ? null : string.Join(", ", members);
    }

    /// <summary>The first value of a header (case-insensitive name), or null. For a header that must be single (strict HTTP refuses a repeat).</summary>
    public string? Header(string name)
    {
        foreach (var (key, value) in Headers)
        {
            if (key.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        return null;
    }

    /// <summary>Records the body once it has been read whole (set once).</summary>
    public void SetBody(ReadOnlyMemory<byte> body)
    {
        if (Body is not null)
        {
            throw new InvalidOperationException("the body of a request view is set once");
        }

        Body = body;
    }
}
