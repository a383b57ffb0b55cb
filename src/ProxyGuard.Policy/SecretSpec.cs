namespace ProxyGuard.Policy;

/// <summary>A <c>secrets[]</c> entry. Holds the secret reference, never the value.</summary>
public sealed class SecretSpec
{
    public required string Name { get; init; }

    /// <summary>The secret reference (<c>env:</c>, <c>file:</c> or <c>vault:</c>).</summary>
    public required string ValueReference { get; init; }

    /// <summary>The explicit placeholder, or <c>null</c> when the policy leaves it to be derived from the name.</summary>
    public string? Placeholder { get; init; }

    /// <summary>The variable name under which <c>proxyguard env</c> prints the placeholder.</summary>
    public string? SandboxEnv { get; init; }

    /// <summary>Hosts the real value may be sent to.</summary>
    public required HostMatcher Hosts { get; init; }

    public required IReadOnlyList<string> HostPatterns { get; init; }

    /// <summary>Where each entry of <see cref="HostPatterns"/> is written (1-based line and column); empty when unknown.</summary>
    public IReadOnlyList<(int Line, int Column)> HostPositions { get; init; } = [];

    public bool InHeaders { get; init; } = true;

    public bool InQuery { get; init; } = true;

    public bool InBody { get; init; }

    /// <summary><c>allow_plain_http</c>: the secret may be substituted into plain-HTTP requests (default false).</summary>
    public bool AllowPlainHttp { get; init; }

    public int Line { get; init; }

    /// <summary>Where the secret's mapping starts (1-based column).</summary>
    public int Column { get; init; } = 1;
}
