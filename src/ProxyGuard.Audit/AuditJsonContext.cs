using System.Text.Json.Serialization;

namespace ProxyGuard.Audit;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AuditEvent))]
[JsonSerializable(typeof(EventPage))]
[JsonSerializable(typeof(AuditGrant))]
[JsonSerializable(typeof(IReadOnlyList<AuditFinding>))]
[JsonSerializable(typeof(IReadOnlyList<string>))]
internal sealed partial class AuditJsonContext : JsonSerializerContext
{
}
