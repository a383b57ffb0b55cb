namespace ProxyGuard.Inspection;

/// <summary>
/// When a request's scans run out of budget, as a <see cref="ScannerOptions.TimeProvider"/> timestamp
/// (<see cref="long.MaxValue"/>: never). The default value is unset: each scan then starts its own budget.
/// </summary>
public readonly record struct ScanDeadline(long Timestamp)
{
    public bool IsSet => Timestamp != 0;
}
