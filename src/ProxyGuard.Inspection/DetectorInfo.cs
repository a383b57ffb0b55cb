namespace ProxyGuard.Inspection;

/// <summary>A built-in detector: stable kebab-case id and a short description.</summary>
public sealed record DetectorInfo(string Id, string Description);
