using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace ProxyGuard.Audit;

/// <summary>JSON settings for events: camelCase, source-generated for the audit types, reflection for anything else.</summary>
public static class AuditJson
{
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(AuditJsonContext.Default.Options)
        {
            TypeInfoResolver = JsonTypeInfoResolver.Combine(AuditJsonContext.Default, new DefaultJsonTypeInfoResolver()),
        };
        options.MakeReadOnly();
        return options;
    }
}
