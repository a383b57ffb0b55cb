using System.Collections.Frozen;

namespace ProxyGuard.Policy.Decisions;

/// <summary>
/// The closed set of decision reasons. Every decision the proxy, <c>policy explain</c> and <c>policy test</c> make
/// carries one of these; docs/policy.md lists them all (a test keeps the two in step).
/// </summary>
public static class Reasons
{
    // Rules (the policy's own decision).
    public static readonly Reason RuleAllow = new("rule-allow", DecisionStage.Rules, 0, true, "a rule allowed it");
    public static readonly Reason RuleAllowSomeRequests = new("rule-allow-some-requests", DecisionStage.Rules, 0, true,
        "CONNECT allowed because an allow rule with methods or paths may allow requests inside; each request is decided");
    public static readonly Reason DefaultAllow = new("default-allow", DecisionStage.Rules, 0, true, "no rule matched and the policy's default is allow");
    public static readonly Reason GrantAllow = new("grant-allow", DecisionStage.Rules, 0, true,
        "an operator's time-boxed grant allowed what the policy's default refused (the rule is grant:ID)");
    public static readonly Reason RuleDeny = new("rule-deny", DecisionStage.Rules, 403, true, "a deny rule matched");
    public static readonly Reason NoRuleMatched = new("no-rule-matched", DecisionStage.Rules, 403, true, "request: no rule matched and the default is deny");
    public static readonly Reason NoRuleAllowsHostPort = new("no-rule-allows-host-port", DecisionStage.Rules, 403, true,
        "CONNECT: no rule can allow this host and port, and the default is deny");
    public static readonly Reason AmbiguousPath = new("ambiguous-path", DecisionStage.Rules, 403, true,
        "the path can be read differently by servers, so it matches no allow rule with paths");
    public static readonly Reason PlainHttpOnHttpsPort = new("plain-http-on-https-port", DecisionStage.Rules, 403, true,
        "a plain-HTTP (http://, ws://) request to port 443, which rules allow for HTTPS only, and the default is deny");
    public static readonly Reason InvalidHost = new("invalid-host", DecisionStage.Rules, 403, true, "the destination host cannot be normalised");
    public static readonly Reason InvalidPort = new("invalid-port", DecisionStage.Rules, 403, true, "the destination port is outside 1-65535");
    public static readonly Reason WebSocketNotAllowed = new("websocket-not-allowed", DecisionStage.Rules, 403, true,
        "a protocol upgrade (WebSocket) on a rule without websocket: true");

    // Client identification.
    public static readonly Reason AuthRequired = new("auth-required", DecisionStage.Client, 407, false,
        "the policy has clients and the request carries no valid Proxy-Authorization credentials");
    public static readonly Reason AuthThrottled = new("auth-throttled", DecisionStage.Client, 429, false,
        "too many failed authentications from this address; retry later");

    // Strict HTTP and request targets.
    public static readonly Reason ConnectNotAllowedHere = new("connect-not-allowed-here", DecisionStage.Protocol, 405, false,
        "CONNECT is only accepted as the first request of a new connection");
    public static readonly Reason AmbiguousLength = new("ambiguous-length", DecisionStage.Protocol, 400, false,
        "Transfer-Encoding with Content-Length, on HTTP/1.0, or a Content-Length that is not one canonical number");
    public static readonly Reason AmbiguousHeader = new("ambiguous-header", DecisionStage.Protocol, 400, false,
        "a header that must appear once (Host, Content-Type, Content-Range) appears in more than one field, which servers may read differently");
    public static readonly Reason H2cNotAllowed = new("h2c-not-allowed", DecisionStage.Protocol, 403, false, "Upgrade: h2c or HTTP2-Settings");
    public static readonly Reason BadTarget = new("bad-target", DecisionStage.Protocol, 400, false, "the request target inside a tunnel is not a path");
    public static readonly Reason NotAProxyRequest = new("not-a-proxy-request", DecisionStage.Protocol, 400, false,
        "a plain request in origin form: send absolute-form requests or CONNECT");
    public static readonly Reason UseConnect = new("use-connect", DecisionStage.Protocol, 400, false, "an https:// absolute-form request: use CONNECT");
    public static readonly Reason BadHost = new("bad-host", DecisionStage.Protocol, 400, false, "a host that does not normalise (zone id, bad IPv4, control characters)");
    public static readonly Reason MalformedConnect = new("malformed-connect", DecisionStage.Protocol, 400, false,
        "a CONNECT head that is not strictly CONNECT host:port HTTP/1.x");
    public static readonly Reason ConnectHeadTooLarge = new("connect-head-too-large", DecisionStage.Limits, 431, false, "the CONNECT head is too large or incomplete");
    public static readonly Reason BadRequest = new("bad-request", DecisionStage.Protocol, 400, false, "refused by the HTTP parser (malformed request)");
    public static readonly Reason NotTls = new("not-tls", DecisionStage.Protocol, 0, false, "plain bytes where a TLS ClientHello is expected");
    public static readonly Reason TlsNotAllowed = new("tls-not-allowed", DecisionStage.Protocol, 0, false, "a TLS ClientHello on a protocol: tcp tunnel");
    public static readonly Reason AuthorityMismatch = new("authority-mismatch", DecisionStage.Protocol, 400, false,
        "HTTP/2 :authority and Host disagree");
    public static readonly Reason WebSocketProtocol = new("websocket-protocol", DecisionStage.Protocol, 400, false,
        "a WebSocket frame that breaks RFC 6455 (unmasked client frame, reserved bits or opcode, non-minimal length, oversized or fragmented control frame, invalid UTF-8 text); the connection is closed");

    // Tunnel identity.
    public static readonly Reason HostMismatch = new("host-mismatch", DecisionStage.Target, 403, false,
        "Host, :authority or the absolute-form target differs from the tunnel's target (domain fronting)");
    public static readonly Reason SniMismatch = new("sni-mismatch", DecisionStage.Target, 403, false, "the TLS server name differs from the CONNECT target");
    public static readonly Reason SniMissing = new("sni-missing", DecisionStage.Target, 0, false, "a pass-through tunnel without a TLS server name");

    // Content.
    public static readonly Reason ContentFinding = new("content-finding", DecisionStage.Content, 403, true, "a detector or content rule with action deny matched");
    public static readonly Reason Undecodable = new("undecodable", DecisionStage.Content, 403, true, "a part of the request could not be decoded for scanning");
    public static readonly Reason OverLimit = new("over-limit", DecisionStage.Content, 413, false, "the body is larger than content.max_body and cannot be scanned");
    public static readonly Reason OverLimitUnscanned = new("over-limit-unscanned", DecisionStage.Content, 0, false,
        "allowed: the body was larger than content.max_body and over_limit: allow forwarded it unscanned");
    public static readonly Reason ScanBudgetExceeded = new("scan-budget-exceeded", DecisionStage.Content, 403, false,
        "scanning the request took longer than the per-request scan budget");

    // Secrets.
    public static readonly Reason SecretMisuse = new("secret-misuse", DecisionStage.Secrets, 403, false,
        "a placeholder toward a host or location its secret is not bound to");
    public static readonly Reason PlaceholderPosition = new("placeholder-position", DecisionStage.Secrets, 403, false,
        "a placeholder in a position that is never substituted (method, path, host, a header, query, cookie, JSON or form name, a fragment)");
    public static readonly Reason SecretPlainHttp = new("secret-plain-http", DecisionStage.Secrets, 403, false,
        "a placeholder toward a plain-HTTP destination; secrets are only substituted over verified TLS");
    public static readonly Reason SecretRealValue = new("secret-real-value", DecisionStage.Secrets, 403, false,
        "the sandbox sent a real secret value (it must only hold placeholders)");
    public static readonly Reason SecretUnavailable = new("secret-unavailable", DecisionStage.Secrets, 503, false,
        "a secret the request needs cannot be resolved on the proxy host");

    // Budgets.
    public static readonly Reason BudgetExceeded = new("budget-exceeded", DecisionStage.Budgets, 429, true,
        "a budget of the policy (requests or upload bytes per client and host over a sliding window) is spent; the event's rule names the budget");

    // Network guard.
    public static readonly Reason PrivateDestination = new("private-destination", DecisionStage.Network, 403, false,
        "a private or special-purpose address not in network.allow_destinations");
    public static readonly Reason Self = new("self", DecisionStage.Network, 403, false, "the destination is one of ProxyGuard's own listeners");
    public static readonly Reason DnsFailure = new("dns-failure", DecisionStage.Network, 502, false, "the destination name does not resolve");

    // Limits and audit.
    public static readonly Reason WebSocketBufferFull = new("websocket-buffer-full", DecisionStage.Limits, 503, false,
        "the process-wide bound on buffered WebSocket message bytes is reached; the connection is closed (1013)");
    public static readonly Reason WebSocketIdle = new("websocket-idle", DecisionStage.Limits, 0, false,
        "a note: no WebSocket frame moved either way for the idle timeout, so the proxy closed both sides (1001)");
    public static readonly Reason WebSocketLifetime = new("websocket-lifetime", DecisionStage.Limits, 0, false,
        "a note: the WebSocket reached the longest lifetime the proxy allows, so the proxy closed both sides (1001)");
    public static readonly Reason TooManyConnections = new("too-many-connections", DecisionStage.Limits, 429, false, "the per-client or per-address connection limit");
    public static readonly Reason OverCapacity = new("over-capacity", DecisionStage.Limits, 503, false,
        "a process-wide budget (buffered request bodies, decompression output, concurrent scans) is spent; new requests are refused until it frees, retry shortly");
    public static readonly Reason AuditUnavailable = new("audit-unavailable", DecisionStage.Audit, 503, false,
        "the audit store cannot record events, so nothing is forwarded");

    // Upstream failures (not policy decisions: the request was allowed, the upstream failed).
    public static readonly Reason UpstreamConnect = new("upstream-connect", DecisionStage.Upstream, 502, false, "the upstream refused or dropped the connection");
    public static readonly Reason UpstreamTls = new("upstream-tls", DecisionStage.Upstream, 502, false, "the upstream certificate is not trusted or does not match");
    public static readonly Reason UpstreamTimeout = new("upstream-timeout", DecisionStage.Upstream, 504, false, "the upstream did not answer in time");
    public static readonly Reason UpstreamError = new("upstream-error", DecisionStage.Upstream, 502, false, "forwarding to the upstream failed");
    public static readonly Reason ResponseUndecodable = new("response-undecodable", DecisionStage.Upstream, 502, false,
        "secrets must be scrubbed from the response, but its coding (an unknown Content-Encoding, a Transfer-Encoding other than chunked) cannot be decoded; or a WebSocket upgrade negotiated an extension the proxy did not offer");
    public static readonly Reason ResponsePartial = new("response-partial", DecisionStage.Upstream, 502, false,
        "a host a secret is bound to answered with part of a resource (206): slices of a stored value would pass the scrubber unseen (Range and If-Range are removed from every request while secrets are configured)");
    public static readonly Reason ClientCanceled = new("client-canceled", DecisionStage.Upstream, 502, false, "the client went away before the exchange finished");
    public static readonly Reason ClientError = new("client-error", DecisionStage.Upstream, 502, false, "reading from or writing to the client failed");
    public static readonly Reason ProxyError = new("proxy-error", DecisionStage.Upstream, 502, false,
        "the proxy failed while handling the exchange (an internal error); the request may already have reached the upstream");

    private static readonly FrozenDictionary<string, Reason> ByName = typeof(Reasons)
        .GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
        .Where(f => f.FieldType == typeof(Reason))
        .Select(f => (Reason)f.GetValue(null)!)
        .ToFrozenDictionary(r => r.Name, StringComparer.Ordinal);

    /// <summary>Every reason, by wire name.</summary>
    public static IReadOnlyDictionary<string, Reason> All => ByName;

    /// <summary>The reason with this wire name, or null.</summary>
    public static Reason? Find(string? name) => name is not null && ByName.TryGetValue(name, out var reason) ? reason : null;
}
