namespace ProxyGuard.Inspection;

/// <summary>The outcome of one scan.</summary>
public sealed class ScanResult
{
    private static readonly Finding[] _noFindings = [];

    /// <summary>The <see cref="Error"/> (and deny reason) when the scan ran past <see cref="ScannerOptions.ScanBudget"/>.</summary>
    public const string BudgetExceededReason = "scan-budget-exceeded";

    /// <summary>The <see cref="Error"/> when the caller's cancellation token fired (the request was aborted).</summary>
    public const string CanceledReason = "scan-canceled";

    internal ScanResult(IReadOnlyList<Finding>? findings, string? error, byte[]? rewrittenBody, string? rewrittenText, ScanErrorKind errorKind = ScanErrorKind.None)
    {
        ErrorKind = error is null ? ScanErrorKind.None : errorKind == ScanErrorKind.None ? ScanErrorKind.Undecodable : errorKind;
        Findings = findings ?? _noFindings;
        Error = error;
        RewrittenBody = rewrittenBody;
        RewrittenText = rewrittenText;
        var blocked = error is not null;
        foreach (var finding in Findings)
        {
            if (finding.Action == ContentAction.Deny)
            {
                blocked = true;
                break;
            }
        }

        Blocked = blocked;
    }

    public IReadOnlyList<Finding> Findings { get; }

    /// <summary>True when any finding's action is <see cref="ContentAction.Deny"/>, or <see cref="Error"/> is set.</summary>
    public bool Blocked { get; }

    /// <summary>Why the content could not be scanned (for example an unknown content-encoding); the engine denies.</summary>
    public string? Error { get; }

    /// <summary>
    /// Why <see cref="Error"/> is set: <see cref="ScanErrorKind.BudgetExceeded"/> (deny with reason
    /// <c>scan-budget-exceeded</c>), <see cref="ScanErrorKind.Canceled"/> (the request was aborted; nothing to answer),
    /// or a decoding failure. <see cref="ScanErrorKind.None"/> when the scan completed.
    /// </summary>
    public ScanErrorKind ErrorKind { get; }

    /// <summary>
    /// Set when a redact rule rewrote the body: the identity-encoded body with matches replaced by
    /// <c>[REDACTED:&lt;rule&gt;]</c>. The engine drops Content-Encoding and re-frames Content-Length.
    /// </summary>
    public byte[]? RewrittenBody { get; }

    /// <summary>Same as <see cref="RewrittenBody"/> for <see cref="ContentScanner.ScanText"/> and <see cref="ContentScanner.ScanQuery"/>.</summary>
    public string? RewrittenText { get; }

    public static ScanResult Clean { get; } = new(null, null, null, null);

    internal static ScanResult Failed(string error, ScanErrorKind kind) => new(null, error, null, null, kind);
}
