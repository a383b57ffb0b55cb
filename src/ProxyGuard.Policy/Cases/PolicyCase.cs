namespace ProxyGuard.Policy;

/// <summary>
/// One expectation case from a CASES.yaml file. <paramref name="Headers"/> and <paramref name="Body"/> are as written
/// (with their <c>{{placeholder:NAME}}</c> / <c>{{value:NAME}}</c> markers); <paramref name="Body"/> is the inline
/// body or the content of <c>body_file</c>.
/// </summary>
public sealed record PolicyCase(
    string Name,
    string? Client,
    string Method,
    TargetUrl Url,
    bool ConnectOnly,
    PolicyCaseExpectation Expect,
    string File,
    int Line,
    int Column)
{
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    public byte[]? Body { get; init; }

    /// <summary>True when the case needs the content and secret stages (headers, a body, or expected findings or secrets).</summary>
    public bool NeedsContentStages => Headers.Count > 0 || Body is not null || Expect.Findings is not null || Expect.Secrets is not null || Expect.Budgets is not null;
}
