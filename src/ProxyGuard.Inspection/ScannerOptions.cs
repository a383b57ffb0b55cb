namespace ProxyGuard.Inspection;

/// <summary>Configuration of a <see cref="ContentScanner"/>.</summary>
public sealed class ScannerOptions
{
    /// <summary>Built-in detector ids to enable: null = all, empty = none. Unknown ids make the scanner constructor throw.</summary>
    public IReadOnlyList<string>? BuiltinDetectorIds { get; init; }

    public IReadOnlyList<CustomRule> CustomRules { get; init; } = [];

    public IReadOnlyList<Exemption> Exemptions { get; init; } = [];

    public IReadOnlyList<KnownSecret> KnownSecrets { get; init; } = [];

    /// <summary>Total bytes produced by decoding one body (all layers).</summary>
    public long MaxDecodedBytes { get; init; } = 32 * 1024 * 1024;

    /// <summary>Maximum decompressed/compressed ratio of one decompression step (outputs under 1 MiB are always allowed).</summary>
    public int MaxExpansionRatio { get; init; } = 100;

    /// <summary>
    /// The process-wide budget of decompression output shared by every scan of every scanner built with it (null: no
    /// process-wide bound, only <see cref="MaxDecodedBytes"/> per scan). A scan that cannot reserve the output of a
    /// decompression step stops with <see cref="ScanErrorKind.CapacityExceeded"/>; what a scan reserved is given back
    /// when the scan ends.
    /// </summary>
    public Budgets.ResourceBudget? DecodeBudget { get; init; }

    /// <summary>Maximum nested decode depth.</summary>
    public int MaxDepth { get; init; } = 4;

    /// <summary>
    /// Wall-clock time one scan (one call of <c>ScanBody</c>, <c>ScanQuery</c> or <c>ScanText</c>) may take; past it the
    /// scan stops with <see cref="ScanErrorKind.BudgetExceeded"/> (reason <c>scan-budget-exceeded</c>), which blocks.
    /// <see cref="Timeout.InfiniteTimeSpan"/> disables it. Default 2 s. Also the match timeout of each custom rule.
    /// </summary>
    public TimeSpan ScanBudget { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The clock the scan budget is measured with (tests substitute a fake one).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}
