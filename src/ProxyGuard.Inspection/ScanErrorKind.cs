namespace ProxyGuard.Inspection;

/// <summary>Why a scan did not complete (<see cref="ScanResult.ErrorKind"/>). Every kind but <see cref="None"/> blocks.</summary>
public enum ScanErrorKind
{
    /// <summary>The scan completed.</summary>
    None,

    /// <summary>An unknown or corrupt content-encoding (body or multipart part).</summary>
    Undecodable,

    /// <summary>Decoding produced more than <see cref="ScannerOptions.MaxDecodedBytes"/> or a decompression ratio past the limit.</summary>
    DecodeLimit,

    /// <summary>Encoded content nested deeper than <see cref="ScannerOptions.MaxDepth"/>.</summary>
    DepthLimit,

    /// <summary>The scan ran past <see cref="ScannerOptions.ScanBudget"/>: deny with reason <c>scan-budget-exceeded</c>.</summary>
    BudgetExceeded,

    /// <summary>
    /// The process-wide decompression budget (<see cref="ScannerOptions.DecodeBudget"/>) had no room: the proxy is
    /// busy with other requests' decoding; refuse with a retryable reason (<c>over-capacity</c>).
    /// </summary>
    CapacityExceeded,

    /// <summary>The caller's cancellation token fired (the request was aborted) before the scan finished.</summary>
    Canceled,
}
