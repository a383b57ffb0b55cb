namespace ProxyGuard.Policy;

/// <summary>One expectation case from a CASES.yaml file.</summary>
public sealed record PolicyCase(
    string Name,
    string? Client,
    string Method,
    TargetUrl Url,
    bool ConnectOnly,
    PolicyCaseExpectation Expect,
    string File,
    int Line,
    int Column);
