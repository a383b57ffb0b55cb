using System.Text;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>What a refused client is told (SPEC 4.5): the decision's status, the decision headers and one plain paragraph.</summary>
internal sealed record Denial(Decision Decision, string Message)
{
    public const string DecisionHeader = "X-ProxyGuard-Decision";
    public const string RuleHeader = "X-ProxyGuard-Rule";
    public const string ReasonHeader = "X-ProxyGuard-Reason";

    public int Status => Decision.Status == 0 ? 403 : Decision.Status;

    /// <summary>
    /// For refusals an operator's grant could lift: the command the agent can ask an operator to run (outside the
    /// sandbox; the sandbox cannot reach the admin API).
    /// </summary>
    public string? GrantHint { get; init; }

    /// <summary>The <c>proxyguard grant</c> command that would lift <paramref name="decision"/>, or null when no grant can.</summary>
    public static string? GrantCommand(Decision decision, string? clientId, string host, int port, string scheme, string? method)
    {
        ArgumentNullException.ThrowIfNull(decision);
        if (decision.Reason != Reasons.NoRuleMatched && decision.Reason != Reasons.NoRuleAllowsHostPort)
        {
            return null;
        }

        var hostArg = Policy.Grants.Grant.FormatHost(host, port == Policy.CompiledPolicy.DefaultPort(scheme) ? null : port);
        var methodArg = method is null ? string.Empty : " --methods " + HeaderSafe(method);
        return $"proxyguard grant --client {(clientId is null ? "'*'" : HeaderSafe(clientId))} --host {HeaderSafe(hostArg)}{methodArg} --for 30m --reason \"<why the agent needs it>\"";
    }

    public string Rule => Decision.Rule;

    public string Reason => Decision.Reason.Name;

    /// <summary>A refusal that every mode enforces, decided by a stage other than the rules.</summary>
    public static Denial Of(Reason reason, string rule, string message) => new(Decision.Enforce(rule, reason), message);

    /// <summary>
    /// The explanation. It names the policy file by its file name only: the client may be unauthenticated and has no
    /// business learning the proxy host's directory layout.
    /// </summary>
    public string Body(string policyFile) => IsUpstreamFailure
        ? $"ProxyGuard could not complete this request: {Message} (reason: {Reason}). This is not a policy decision: the policy " +
          "allowed the request, and the upstream (or resolving its name) failed. Retrying later may work; if it keeps failing, tell the operator.\n"
        : $"ProxyGuard blocked this request: {Message} (reason: {Reason}; deciding rule: {Rule}; policy: {Path.GetFileName(policyFile)}). " +
          "The agent cannot change this itself; if the access is needed, ask the operator to change that policy" +
          (GrantHint is null ? ".\n" : $", or to grant temporary access with: {GrantHint}\n");

    /// <summary>A failure after the policy allowed the request: the upstream (or its name) failed, not the policy.</summary>
    public bool IsUpstreamFailure => Decision.Stage == DecisionStage.Upstream || Decision.Reason == Reasons.DnsFailure;

    /// <summary>A complete HTTP/1.1 response for connections that never reach the HTTP server (CONNECT).</summary>
    public byte[] ToRawResponse(string policyFile, string? extraHeaders = null)
    {
        var body = Body(policyFile);
        var reasonPhrase = Status switch
        {
            400 => "Bad Request",
            403 => "Forbidden",
            407 => "Proxy Authentication Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Error",
        };
        var head = new StringBuilder()
            .Append("HTTP/1.1 ").Append(Status).Append(' ').Append(reasonPhrase).Append("\r\n")
            .Append(DecisionHeader).Append(IsUpstreamFailure ? ": error\r\n" : ": deny\r\n")
            .Append(RuleHeader).Append(": ").Append(HeaderSafe(Rule)).Append("\r\n")
            .Append(ReasonHeader).Append(": ").Append(HeaderSafe(Reason)).Append("\r\n")
            .Append(extraHeaders)
            .Append("Content-Type: text/plain; charset=utf-8\r\n")
            .Append("Content-Length: ").Append(Encoding.UTF8.GetByteCount(body)).Append("\r\n")
            .Append("Connection: close\r\n\r\n")
            .Append(body);
        return Encoding.UTF8.GetBytes(head.ToString());
    }

    internal static string HeaderSafe(string value)
    {
        var sb = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            sb.Append(c is >= ' ' and < (char)0x7F ? c : '?');
        }

        return sb.ToString();
    }
}
