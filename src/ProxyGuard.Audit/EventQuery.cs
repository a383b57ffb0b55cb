namespace ProxyGuard.Audit;

/// <summary>A page request: events with id greater than <paramref name="After"/>, oldest first, exact-match filters.</summary>
/// <param name="After">Cursor: the <see cref="EventPage.Next"/> of the previous page (0 for the start).</param>
/// <param name="Limit">Page size, clamped to 1..1000.</param>
/// <param name="Decision">Exact decision (<c>allow</c>, <c>deny</c>, <c>audit-deny</c>).</param>
/// <param name="Client">Exact client name.</param>
/// <param name="Host">Exact host, normalised like stored hosts (lower case, no trailing dot).</param>
public sealed record EventQuery(long After = 0, int Limit = 100, string? Decision = null, string? Client = null, string? Host = null)
{
    public const int MaxLimit = 1000;
}
