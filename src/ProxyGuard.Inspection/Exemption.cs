namespace ProxyGuard.Inspection;

/// <summary>Detector ids (or custom rule names) that are not applied toward the hosts it applies to.</summary>
public sealed record Exemption(IReadOnlyList<string> DetectorIds, Func<string, bool> AppliesToHost);
