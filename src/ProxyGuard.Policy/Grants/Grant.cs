using System.Globalization;

namespace ProxyGuard.Policy.Grants;

/// <summary>
/// An operator's time-boxed allow on top of the policy: requests of <see cref="Client"/> (<c>*</c>: any client) to
/// <see cref="Host"/> (a name, an IP literal or <c>*.domain</c>) on <see cref="Port"/> (null: the scheme's default
/// port), optionally narrowed to methods and path globs, until <see cref="Until"/>. It lifts only the policy's
/// default refusal; a deny rule still wins. <see cref="By"/> and <see cref="Why"/> are recorded, never matched.
/// </summary>
public sealed record Grant(
    string Id,
    string Client,
    string Host,
    int? Port,
    IReadOnlyList<string> Methods,
    IReadOnlyList<string> Paths,
    DateTimeOffset Created,
    DateTimeOffset Until,
    string By,
    string Why)
{
    /// <summary>The rule name decisions carry when this grant allowed them.</summary>
    public string RuleName => RulePrefix + Id;

    public const string RulePrefix = "grant:";

    /// <summary>Longest grant: a week. Anything longer belongs in the policy file.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromDays(7);

    public const int MaxReasonLength = 500;
    public const int MaxMethods = 16;
    public const int MaxPaths = 32;

    /// <summary>
    /// Checks a grant request and returns it compiled, or the one-line problem. <paramref name="host"/> may carry a
    /// port (<c>host:8443</c>, <c>[v6]:8443</c>).
    /// </summary>
    public static string? TryCreate(
        string id, string? client, string? host, IReadOnlyList<string>? methods, IReadOnlyList<string>? paths,
        TimeSpan duration, string? why, string by, DateTimeOffset now, out CompiledGrant? grant)
    {
        grant = null;
        if (string.IsNullOrWhiteSpace(client) || client.Length > 128 || client.Any(char.IsControl))
        {
            return "client: give the client id the grant is for ('*' for any client)";
        }

        if (string.IsNullOrWhiteSpace(why) || why.Trim().Length > MaxReasonLength)
        {
            return $"reason: say why the access is needed (1-{MaxReasonLength} characters)";
        }

        if (duration < TimeSpan.FromSeconds(1) || duration > MaxDuration)
        {
            return "for: a duration from 1s to 7d (e.g. 30m, 2h)";
        }

        if (string.IsNullOrWhiteSpace(host) || host.Length > 300)
        {
            return "host: give a host name, IP literal or *.domain, optionally with :PORT";
        }

        var (name, port, hostError) = SplitPort(host.Trim());
        if (hostError is not null)
        {
            return hostError;
        }

        if (!HostPattern.TryParse(name, allowAny: false, out var parsed, out var patternError))
        {
            return "host: " + patternError;
        }

        if (parsed.Kind == HostPattern.Kind.Network)
        {
            return "host: a grant names a host, an IP address or *.domain, not a network";
        }

        var methodList = (methods ?? []).SelectMany(m => m.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(m => m.ToUpperInvariant()).Distinct(StringComparer.Ordinal).ToList();
        if (methodList.Count > MaxMethods || methodList.Any(m => m.Length is 0 or > 32 || !m.All(c => c is >= 'A' and <= 'Z' or '-' or '_')))
        {
            return $"methods: at most {MaxMethods} HTTP method names (e.g. GET,HEAD)";
        }

        var pathList = (paths ?? []).SelectMany(p => p.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Distinct(StringComparer.Ordinal).ToList();
        if (pathList.Count > MaxPaths)
        {
            return $"paths: at most {MaxPaths} path globs";
        }

        var globs = new List<PathGlob>();
        foreach (var p in pathList)
        {
            if (!PathGlob.TryCompile(p, out var glob, out var globError))
            {
                return "paths: " + globError;
            }

            globs.Add(glob!);
        }

        var stored = parsed.Kind == HostPattern.Kind.Wildcard ? "*" + parsed.Value : parsed.Value;
        var spec = new Grant(id, client.Trim(), stored, port, methodList, pathList, now, now + duration, by, why.Trim());
        grant = new CompiledGrant(spec, HostPattern.Build([parsed]), globs);
        return null;
    }

    /// <summary>Compiles a stored grant again (after a restart); null when it no longer parses.</summary>
    public static CompiledGrant? Compile(Grant stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var host = stored.Port is { } p ? FormatHost(stored.Host, p) : stored.Host;
        var error = TryCreate(stored.Id, stored.Client, host, stored.Methods, stored.Paths, TimeSpan.FromSeconds(1), stored.Why, stored.By,
            stored.Created, out var compiled);
        return error is null ? new CompiledGrant(stored, compiled!.Hosts, compiled.Globs) : null;
    }

    /// <summary><c>host</c> or <c>host:port</c> (IPv6 in brackets).</summary>
    public static string FormatHost(string host, int? port)
    {
        ArgumentNullException.ThrowIfNull(host);
        var h = host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host;
        return port is { } p ? h + ":" + p.ToString(CultureInfo.InvariantCulture) : h;
    }

    /// <summary>Parses <c>90s</c>, <c>30m</c>, <c>2h</c>, <c>7d</c> (one whole number and one unit).</summary>
    public static bool TryParseDuration(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text) || text.Trim().Length < 2)
        {
            return false;
        }

        var t = text.Trim();
        if (!long.TryParse(t.AsSpan(0, t.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > 1_000_000)
        {
            return false;
        }

        duration = t[^1] switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => TimeSpan.MinValue,
        };
        return duration != TimeSpan.MinValue;
    }

    private static (string Name, int? Port, string? Error) SplitPort(string host)
    {
        string name = host;
        string? portText = null;
        if (host.StartsWith('['))
        {
            var close = host.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return (host, null, "host: an IPv6 literal needs its closing ']'");
            }

            name = host[1..close];
            if (close + 1 < host.Length)
            {
                if (host[close + 1] != ':')
                {
                    return (host, null, "host: expected [ADDRESS]:PORT");
                }

                portText = host[(close + 2)..];
            }
        }
        else if (host.Count(c => c == ':') == 1)
        {
            var colon = host.IndexOf(':', StringComparison.Ordinal);
            name = host[..colon];
            portText = host[(colon + 1)..];
        }

        if (portText is null)
        {
            return (name, null, null);
        }

        return int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535
            ? (name, port, null)
            : (name, null, "host: the port must be 1-65535");
    }
}

/// <summary>A grant with its host matcher and path globs.</summary>
public sealed class CompiledGrant
{
    internal CompiledGrant(Grant grant, HostMatcher hosts, IReadOnlyList<PathGlob> globs)
    {
        Grant = grant;
        Hosts = hosts;
        Globs = globs;
    }

    public Grant Grant { get; }

    internal HostMatcher Hosts { get; }

    internal IReadOnlyList<PathGlob> Globs { get; }

    /// <summary>True when the grant covers this CONNECT (method null) or request at <paramref name="now"/>.</summary>
    internal bool Covers(string? clientId, string scheme, string normalizedHost, int port, string? method, PathNormalization? path, DateTimeOffset now)
    {
        var g = Grant;
        if (now >= g.Until || (g.Client != "*" && !string.Equals(g.Client, clientId, StringComparison.Ordinal)))
        {
            return false;
        }

        var expectedPort = g.Port ?? CompiledPolicy.DefaultPort(scheme);
        if (port != expectedPort || !Hosts.Matches(normalizedHost))
        {
            return false;
        }

        if (method is null)
        {
            return true; // a CONNECT: each request inside is decided again
        }

        if (g.Methods.Count > 0 && !g.Methods.Contains(method.ToUpperInvariant(), StringComparer.Ordinal))
        {
            return false;
        }

        if (Globs.Count == 0)
        {
            return true;
        }

        // As for rules: an ambiguous path never matches an allow with paths.
        return path is { Ambiguous: false } p && Globs.Any(glob => glob.IsMatch(p.Path));
    }
}

/// <summary>An immutable set of active grants, swapped whole when a grant is added, revoked or expires.</summary>
public sealed class GrantSet
{
    private readonly CompiledGrant[] _grants;

    public GrantSet(IEnumerable<CompiledGrant> grants)
    {
        _grants = [.. grants ?? []];
    }

    public static GrantSet Empty { get; } = new([]);

    public IReadOnlyList<CompiledGrant> Grants => _grants;

    /// <summary>The first grant (oldest first) covering the input at <paramref name="now"/>, or null.</summary>
    public Grant? Match(Decisions.DecisionInput input, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_grants.Length == 0 || !HostNormalizer.TryNormalize(input.Host, out var host, out _))
        {
            return null;
        }

        var path = input.IsConnect ? null : PathNormalizer.Normalize(input.RawPath ?? "/");
        foreach (var g in _grants)
        {
            if (g.Covers(input.ClientId, input.Scheme, host, input.Port, input.Method, path, now))
            {
                return g.Grant;
            }
        }

        return null;
    }
}
