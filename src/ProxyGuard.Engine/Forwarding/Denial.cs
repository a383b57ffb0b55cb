using System.Text;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>What a refused client is told (SPEC 4.5): status, decision headers and one plain paragraph.</summary>
public sealed record Denial(int Status, string Rule, string Reason, string Message)
{
    public const string DecisionHeader = "X-ProxyGuard-Decision";
    public const string RuleHeader = "X-ProxyGuard-Rule";
    public const string ReasonHeader = "X-ProxyGuard-Reason";

    public string Body(string policyFile) =>
        $"ProxyGuard blocked this request: {Message} (reason: {Reason}; deciding rule: {Rule}; policy: {policyFile}). " +
        "The agent cannot change this itself; if the access is needed, ask the operator to change that policy.\n";

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
            .Append(DecisionHeader).Append(": deny\r\n")
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
