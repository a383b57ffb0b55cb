namespace ProxyGuard.Policy;

/// <summary>One compiled <c>rules[]</c> entry.</summary>
public sealed class RuleSpec
{
    public required string Name { get; init; }

    /// <summary>Client ids the rule applies to; empty = every client (and unauthenticated requests).</summary>
    public required IReadOnlyList<string> Clients { get; init; }

    /// <summary>The host patterns as written (exact, <c>*.suffix</c>, <c>*</c>, IP or CIDR).</summary>
    public required IReadOnlyList<string> Hosts { get; init; }

    public required HostMatcher HostMatcher { get; init; }

    /// <summary>Ports; empty = the scheme's default (443 for https and CONNECT, 80 for http).</summary>
    public required IReadOnlyList<int> Ports { get; init; }

    /// <summary>Upper-case methods; empty = every method.</summary>
    public required IReadOnlyList<string> Methods { get; init; }

    /// <summary>Path globs as written; empty = every path.</summary>
    public required IReadOnlyList<string> Paths { get; init; }

    public required RuleAction Action { get; init; }

    public bool Inspect { get; init; } = true;

    public bool WebSocket { get; init; }

    /// <summary><c>http</c> (default) or <c>tcp</c>.</summary>
    public string Protocol { get; init; } = "http";

    /// <summary>How a CONNECT allowed by this rule is handled.</summary>
    public TunnelMode TunnelMode { get; init; } = TunnelMode.Intercept;

    /// <summary>1-based line of the rule in the policy file.</summary>
    public int Line { get; init; }

    public int Column { get; init; }

    /// <summary>True when the rule constrains methods or paths (so it can only be decided per request).</summary>
    public bool HasRequestConstraints => Methods.Count > 0 || Paths.Count > 0;

    internal IReadOnlyList<PathGlob> CompiledPaths { get; init; } = [];

    internal HashSet<string>? ClientSet { get; init; }

    internal HashSet<string>? MethodSet { get; init; }
}
