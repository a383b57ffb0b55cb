namespace ProxyGuard.Secrets;

/// <summary>
/// A secret reference could not be resolved (or a cached value expired and could not be refreshed).
/// The message names the reference and the reason; it never contains a secret value.
/// </summary>
public sealed class SecretUnavailableException : Exception
{
    public SecretUnavailableException(string reference, string reason)
        : base(FormatMessage(reference, reason))
    {
        Reference = reference;
        Reason = OneLine(reason);
    }

    public SecretUnavailableException(string reference, string reason, Exception? innerException)
        : base(FormatMessage(reference, reason), innerException)
    {
        Reference = reference;
        Reason = OneLine(reason);
    }

    /// <summary>The reference as written in the policy (e.g. <c>vault:secret/data/ci/github#token</c>).</summary>
    public string Reference { get; }

    /// <summary>One-line reason without the reference (for <c>policy check</c> and deny reasons).</summary>
    public string Reason { get; }

    private static string FormatMessage(string reference, string reason) =>
        $"secret '{OneLine(reference)}' is unavailable: {OneLine(reason)}";

    internal static string OneLine(string text) =>
        text.Replace('\r', ' ').Replace('\n', ' ');
}
