using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary><c>--json-logs</c>: structured console logs for container platforms, without secrets or query values.</summary>
[Collection("proxy")]
public sealed class LoggingTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;

    public LoggingTests(AuditFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Json_logs_are_one_object_per_line_and_carry_denials()
    {
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, "jsonlogs"), _f.Policy,
            ["--resolve", "origin.test=127.0.0.1", "--json-logs"], AuditFixture.Environment);
        var marker = Traffic.Marker();
        Assert.Equal(403, (await Traffic.GetAsync(proxy, _f.HttpsUrl($"/echo/blocked/{marker}?token=synthetic-log-value"))).Status);
        Assert.Equal(502, (await Traffic.GetAsync(proxy, $"http://127.0.0.1:{_f.DeadPort}/x")).Status);

        JsonElement deny = default;
        await Traffic.WaitUntilAsync(() =>
        {
            deny = LogLines(proxy).LastOrDefault(l => l.GetProperty("Message").GetString()!.Contains(marker, StringComparison.Ordinal));
            return Task.FromResult(deny.ValueKind == JsonValueKind.Object);
        }, "the deny log entry");

        Assert.Equal("Information", deny.GetProperty("LogLevel").GetString());
        Assert.Equal("ProxyGuard.Audit", deny.GetProperty("Category").GetString());
        Assert.True(DateTimeOffset.TryParse(deny.GetProperty("Timestamp").GetString(), out var at), "no parseable Timestamp");
        Assert.True(Math.Abs((DateTimeOffset.UtcNow - at).TotalMinutes) < 10);
        Assert.Contains("blocked-path", deny.GetProperty("Message").GetString(), StringComparison.Ordinal);

        // Besides the start banner, every line on the console is a JSON object.
        var others = proxy.Output.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("proxyguard: ", StringComparison.Ordinal)).ToList();
        Assert.All(others, l => Assert.StartsWith("{", l, StringComparison.Ordinal));
        Assert.DoesNotContain("synthetic-log-value", proxy.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(AuditFixture.SecretValue, proxy.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", proxy.Output, StringComparison.Ordinal); // no stack traces for an upstream failure
    }

    private static List<JsonElement> LogLines(ProxyProcess proxy) =>
        proxy.Output.Split('\n').Where(l => l.StartsWith('{')).Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            return doc.RootElement.Clone();
        }).ToList();
}
