using System.Text.Json.Serialization;

namespace ProxyGuard.Audit;

/// <summary>One audit event (SPEC section 5). Serialised as camelCase JSON through <see cref="AuditJson.Options"/>.</summary>
public sealed record AuditEvent
{
    /// <summary>Assigned by the store (monotonic, never reused); any value set by a producer is ignored.</summary>
    public long Id { get; init; }

    /// <summary>With a central event store: the replica that recorded the event (absent otherwise).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Replica { get; init; }

    /// <summary>With a central event store: the event's id in its replica's local store (absent otherwise).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? LocalId { get; init; }

    /// <summary>When the decision was made. A default value is replaced with the store clock's time.</summary>
    public DateTimeOffset Time { get; init; }

    public string? Client { get; init; }

    public string? ClientAddress { get; init; }

    /// <summary><c>request</c>, <c>connect</c> or <c>tunnel</c> (see <see cref="AuditKinds"/>).</summary>
    public required string Kind { get; init; }

    public string? Method { get; init; }

    public string? Scheme { get; init; }

    public required string Host { get; init; }

    public int Port { get; init; }

    /// <summary>Path with query values removed (<see cref="PathRedaction"/>); the store applies the redaction again.</summary>
    public string? Path { get; init; }

    /// <summary><c>allow</c>, <c>deny</c> or <c>audit-deny</c> (see <see cref="AuditDecisions"/>).</summary>
    public required string Decision { get; init; }

    public string? Rule { get; init; }

    public string? Reason { get; init; }

    public IReadOnlyList<AuditFinding> Findings { get; init; } = [];

    /// <summary>Names of the secrets substituted into the request; never their values.</summary>
    public IReadOnlyList<string> SecretsInjected { get; init; } = [];

    public int? Status { get; init; }

    public long RequestBytes { get; init; }

    public long ResponseBytes { get; init; }

    public double DurationMs { get; init; }

    /// <summary>Events of kind <c>grant</c>: the grant's id, what happened to it, who did it, why, and until when.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public AuditGrant? Grant { get; init; }
}

/// <summary>
/// What an operator's grant event records: <paramref name="Action"/> is <c>created</c>, <c>revoked</c> or
/// <c>expired</c>; <paramref name="By"/> who acted (<c>cli</c>, <c>admin-api</c>, or <c>proxyguard</c> for an expiry);
/// <paramref name="Why"/> the operator's reason; <paramref name="Until"/> when the grant ends (or ended).
/// </summary>
public sealed record AuditGrant(string Id, string Action, string By, string Why, DateTimeOffset Until);
