namespace ProxyGuard.Policy;

/// <summary>What a budget counts: requests or request-body bytes.</summary>
public enum BudgetQuantity
{
    Requests,
    UploadBytes,
}

/// <summary>One limit of a budget: at most <see cref="Amount"/> of <see cref="Quantity"/> in any <see cref="Window"/>.</summary>
public sealed record BudgetLimit(BudgetQuantity Quantity, long Amount, TimeSpan Window)
{
    /// <summary>The policy's spelling, e.g. <c>100/1m</c> or <c>10485760 bytes/1h</c>.</summary>
    public override string ToString() => Quantity == BudgetQuantity.Requests
        ? $"{Amount} requests/{WindowText(Window)}"
        : $"{Amount} bytes/{WindowText(Window)}";

    public static string WindowText(TimeSpan window) =>
        window.TotalHours >= 1 && window.TotalHours == Math.Floor(window.TotalHours) ? $"{(long)window.TotalHours}h"
        : window.TotalMinutes >= 1 && window.TotalMinutes == Math.Floor(window.TotalMinutes) ? $"{(long)window.TotalMinutes}m"
        : window.TotalSeconds == Math.Floor(window.TotalSeconds) ? $"{(long)window.TotalSeconds}s"
        : $"{(long)window.TotalMilliseconds}ms";
}

/// <summary>
/// One entry of <c>budgets</c>: request and upload-byte limits over sliding windows, counted separately for each
/// combination of the <see cref="Per"/> dimensions (client, host, rule) among the requests it matches.
/// </summary>
public sealed class BudgetSpec
{
    public required string Name { get; init; }

    /// <summary>Host patterns of <c>match.hosts</c> (empty: every host).</summary>
    public required IReadOnlyList<string> Hosts { get; init; }

    public required HostMatcher HostMatcher { get; init; }

    /// <summary><c>match.clients</c> (empty: every client).</summary>
    public required IReadOnlyList<string> Clients { get; init; }

    /// <summary><c>match.rule</c>: only requests this rule allowed (null: any rule).</summary>
    public string? Rule { get; init; }

    /// <summary>The dimensions counted separately, in the order <c>client</c>, <c>host</c>, <c>rule</c>.</summary>
    public required IReadOnlyList<string> Per { get; init; }

    /// <summary>The limits (one or two: requests and/or upload bytes).</summary>
    public required IReadOnlyList<BudgetLimit> Limits { get; init; }

    public int Line { get; init; }

    public int Column { get; init; }

    /// <summary>True when the budget counts this request (host already normalised; rule = the rule that allowed it).</summary>
    public bool Matches(string? clientId, string normalizedHost, string rule)
    {
        if (Clients.Count > 0 && (clientId is null || !Clients.Contains(clientId, StringComparer.Ordinal)))
        {
            return false;
        }

        if (Rule is not null && !string.Equals(Rule, rule, StringComparison.Ordinal))
        {
            return false;
        }

        return HostMatcher.Matches(normalizedHost);
    }

    /// <summary>
    /// The counter key of a request, e.g. <c>client=agent-1 host=api.example.com</c>. <paramref name="client"/> is the
    /// client id, or the source address when the policy has no clients.
    /// </summary>
    public string KeyFor(string client, string normalizedHost, string rule)
    {
        var parts = new List<string>(Per.Count);
        foreach (var dimension in Per)
        {
            parts.Add(dimension switch
            {
                "client" => "client=" + client,
                "host" => "host=" + normalizedHost,
                _ => "rule=" + rule,
            });
        }

        return parts.Count == 0 ? "all" : string.Join(' ', parts);
    }
}
