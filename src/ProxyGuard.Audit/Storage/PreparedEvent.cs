using System.Text.Json;

namespace ProxyGuard.Audit.Storage;

/// <summary>
/// An event as it will be stored: redacted, normalised, bounded, with its lists already serialised.
/// Built on the producer's thread so the single writer only binds parameters.
/// </summary>
internal sealed class PreparedEvent
{
    private const int MaxShort = 64;
    private const int MaxName = 256;
    private const int MaxText = 1024;
    private const int MaxHost = 300;
    private const int MaxListEntries = 256;

    public long TimeMicros { get; init; }
    public string? Client { get; init; }
    public string? ClientAddress { get; init; }
    public required string Kind { get; init; }
    public string? Method { get; init; }
    public string? Scheme { get; init; }
    public required string Host { get; init; }
    public int Port { get; init; }
    public string? Path { get; init; }
    public required string Decision { get; init; }
    public string? Rule { get; init; }
    public string? Reason { get; init; }
    public string? FindingsJson { get; init; }
    public string? SecretsJson { get; init; }
    public int? Status { get; init; }
    public long RequestBytes { get; init; }
    public long ResponseBytes { get; init; }
    public double DurationMs { get; init; }
    public string? GrantJson { get; init; }

    public static PreparedEvent From(AuditEvent e, TimeProvider clock)
    {
        ArgumentNullException.ThrowIfNull(e);
        var time = e.Time == default ? clock.GetUtcNow() : e.Time;
        return new PreparedEvent
        {
            TimeMicros = ToMicros(time),
            Client = Bound(EventText.Clean(e.Client), MaxName),
            ClientAddress = Bound(EventText.Clean(e.ClientAddress), MaxShort),
            Kind = Bound(e.Kind, MaxShort) ?? string.Empty,
            Method = Bound(EventText.Clean(e.Method), MaxShort),
            Scheme = Bound(EventText.Clean(e.Scheme), MaxShort),
            Host = NormalizeHost(EventText.Clean(e.Host)) ?? string.Empty,
            Port = e.Port,
            Path = e.Path is null ? null : PathRedaction.StripQueryValues(e.Path),
            Decision = Bound(e.Decision, MaxShort) ?? string.Empty,
            Rule = Bound(EventText.Clean(e.Rule), MaxName),
            Reason = Bound(EventText.Clean(e.Reason), MaxText),
            FindingsJson = SerializeFindings(e.Findings),
            SecretsJson = SerializeSecrets(e.SecretsInjected),
            Status = e.Status,
            RequestBytes = e.RequestBytes,
            ResponseBytes = e.ResponseBytes,
            DurationMs = double.IsFinite(e.DurationMs) ? e.DurationMs : 0,
            GrantJson = e.Grant is { } g
                ? JsonSerializer.Serialize(
                    new AuditGrant(Bound(EventText.Clean(g.Id), MaxShort) ?? string.Empty, Bound(g.Action, MaxShort) ?? string.Empty,
                        Bound(EventText.Clean(g.By), MaxName) ?? string.Empty, Bound(EventText.Clean(g.Why), MaxText) ?? string.Empty, g.Until),
                    AuditJsonContext.Default.AuditGrant)
                : null,
        };
    }

    /// <summary>
    /// Reads a stored row whose event columns (<see cref="EventSchema.Columns"/> without the id: time through grant)
    /// start at <paramref name="first"/>; the one mapping for the local store and the central one.
    /// </summary>
    internal static PreparedEvent Read(System.Data.Common.DbDataReader r, int first)
    {
        string? Text(int i) => r.IsDBNull(first + i) ? null : r.GetString(first + i);
        return new PreparedEvent
        {
            TimeMicros = r.GetInt64(first),
            Client = Text(1),
            ClientAddress = Text(2),
            Kind = r.GetString(first + 3),
            Method = Text(4),
            Scheme = Text(5),
            Host = r.GetString(first + 6),
            Port = r.GetInt32(first + 7),
            Path = Text(8),
            Decision = r.GetString(first + 9),
            Rule = Text(10),
            Reason = Text(11),
            FindingsJson = Text(12),
            SecretsJson = Text(13),
            Status = r.IsDBNull(first + 14) ? null : r.GetInt32(first + 14),
            RequestBytes = r.GetInt64(first + 15),
            ResponseBytes = r.GetInt64(first + 16),
            DurationMs = r.GetDouble(first + 17),
            GrantJson = Text(18),
        };
    }

    /// <summary>The event as the API returns it, with the id a reader assigned (local id, or the central cursor).</summary>
    public AuditEvent ToAuditEvent(long id, string? replica = null, long? localId = null) => new()
    {
        Id = id,
        Replica = replica,
        LocalId = localId,
        Time = FromMicros(TimeMicros),
        Client = Client,
        ClientAddress = ClientAddress,
        Kind = Kind,
        Method = Method,
        Scheme = Scheme,
        Host = Host,
        Port = Port,
        Path = Path,
        Decision = Decision,
        Rule = Rule,
        Reason = Reason,
        Findings = FindingsJson is string findings
            ? JsonSerializer.Deserialize(findings, AuditJsonContext.Default.IReadOnlyListAuditFinding) ?? []
            : [],
        SecretsInjected = SecretsJson is string secrets
            ? JsonSerializer.Deserialize(secrets, AuditJsonContext.Default.IReadOnlyListString) ?? []
            : [],
        Status = Status,
        RequestBytes = RequestBytes,
        ResponseBytes = ResponseBytes,
        DurationMs = DurationMs,
        Grant = GrantJson is string grant ? JsonSerializer.Deserialize(grant, AuditJsonContext.Default.AuditGrant) : null,
    };

    /// <summary>Lower case, trimmed, without a trailing dot, bounded: the form stored and matched by queries.</summary>
    public static string? NormalizeHost(string? host)
    {
        if (host is null)
        {
            return null;
        }

        var trimmed = host.AsSpan().Trim().TrimEnd('.');
        var normalized = trimmed.Length == host.Length ? host.ToLowerInvariant() : trimmed.ToString().ToLowerInvariant();
        return Bound(normalized, MaxHost);
    }

    public static long ToMicros(DateTimeOffset time) => (time.UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    public static DateTimeOffset FromMicros(long micros) =>
        new(DateTime.UnixEpoch.Ticks + (micros * TimeSpan.TicksPerMicrosecond), TimeSpan.Zero);

    private static string? Bound(string? value, int max)
    {
        if (value is null || value.Length <= max)
        {
            return value;
        }

        var keep = char.IsHighSurrogate(value[max - 1]) ? max - 1 : max;
        return value[..keep];
    }

    private static string? SerializeFindings(IReadOnlyList<AuditFinding>? findings)
    {
        if (findings is null || findings.Count == 0)
        {
            return null;
        }

        var bounded = new AuditFinding[Math.Min(findings.Count, MaxListEntries)];
        for (var i = 0; i < bounded.Length; i++)
        {
            var f = findings[i];
            bounded[i] = new AuditFinding(
                Bound(f?.Detector, MaxName) ?? string.Empty,
                Bound(f?.Location, MaxName) ?? string.Empty,
                Bound(f?.Action, MaxShort) ?? string.Empty);
        }

        return JsonSerializer.Serialize<IReadOnlyList<AuditFinding>>(bounded, AuditJsonContext.Default.IReadOnlyListAuditFinding);
    }

    private static string? SerializeSecrets(IReadOnlyList<string>? names)
    {
        if (names is null || names.Count == 0)
        {
            return null;
        }

        var bounded = new string[Math.Min(names.Count, MaxListEntries)];
        for (var i = 0; i < bounded.Length; i++)
        {
            bounded[i] = Bound(names[i], MaxName) ?? string.Empty;
        }

        return JsonSerializer.Serialize<IReadOnlyList<string>>(bounded, AuditJsonContext.Default.IReadOnlyListString);
    }
}
