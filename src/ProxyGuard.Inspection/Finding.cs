namespace ProxyGuard.Inspection;

/// <summary>A match: which detector (id or custom rule name), where, and what to do. Never the matched value.</summary>
public sealed record Finding(string Detector, ScanLocation Location, ContentAction Action);
