using System.Text.Json;

namespace ProxyGuard.Audit.Tests;

public class AuditJsonTests
{
    [Fact]
    public void Serializes_events_with_spec_camel_case_names()
    {
        var e = Events.Make(5) with
        {
            Id = 5,
            Findings = [new AuditFinding("aws-key", "body", "block")],
            SecretsInjected = ["OPENAI_KEY"],
        };
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(e, AuditJson.Options));
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(
            ["id", "time", "client", "clientAddress", "kind", "method", "scheme", "host", "port", "path", "decision", "rule", "reason",
             "findings", "secretsInjected", "status", "requestBytes", "responseBytes", "durationMs"],
            names);
        var finding = doc.RootElement.GetProperty("findings")[0];
        Assert.Equal("aws-key", finding.GetProperty("detector").GetString());
        Assert.Equal("body", finding.GetProperty("location").GetString());
        Assert.Equal("block", finding.GetProperty("action").GetString());
    }

    [Fact]
    public void Pages_serialize_as_events_and_next_and_round_trip()
    {
        var page = new EventPage([Events.Make(1) with { Id = 1, Findings = [new AuditFinding("d", "l", "a")] }], 1);
        var json = JsonSerializer.Serialize(page, AuditJson.Options);
        Assert.StartsWith("{\"events\":[{\"id\":1,", json, StringComparison.Ordinal);
        Assert.EndsWith(",\"next\":1}", json, StringComparison.Ordinal);
        var back = JsonSerializer.Deserialize<EventPage>(json, AuditJson.Options)!;
        Assert.Equal(1, back.Next);
        Assert.Equal(page.Events[0].Findings[0], back.Events[0].Findings[0]);
        Assert.Equal(page.Events[0].Path, back.Events[0].Path);
    }

    [Fact]
    public void Options_also_serialize_types_outside_the_generated_context()
    {
        var json = JsonSerializer.Serialize(new { Events = Array.Empty<AuditEvent>(), Next = 3L }, AuditJson.Options);
        Assert.Equal("{\"events\":[],\"next\":3}", json);
    }
}
