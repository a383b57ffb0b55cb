namespace ProxyGuard.Inspection;

/// <summary>
/// A policy-defined rule. <see cref="Pattern"/> is compiled with
/// <c>RegexOptions.NonBacktracking | RegexOptions.CultureInvariant</c>, so it runs in linear time.
/// </summary>
public sealed record CustomRule(string Name, string Pattern, ContentAction Action, Func<string, bool> AppliesToHost);
