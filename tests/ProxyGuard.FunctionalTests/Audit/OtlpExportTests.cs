using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// OTLP export (http/protobuf) to a collector the test runs on loopback: audit events arrive as log records carrying the
/// stored event's fields, never a placeholder or a real secret value; the metrics arrive under their Prometheus names;
/// an unreachable collector costs the requests nothing and its losses are counted.
/// </summary>
[Collection("proxy")]
public sealed class OtlpExportTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;

    public OtlpExportTests(AuditFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Events_arrive_as_otlp_logs_with_the_stored_fields_and_metrics_as_otlp_metrics_without_secrets()
    {
        await using var collector = await Collector.StartAsync();
        await using var proxy = await StartAsync("otlp", collector.Url);
        var https = _f.Origin.HttpsPort;
        var marker = Traffic.Marker();

        // An allowed request whose placeholder is swapped for the real value, a denied one, and one with the
        // placeholder in the path (refused, its path redacted in the event).
        var allowed = await Traffic.SendAsync(proxy, HttpMethod.Get, $"https://localhost:{https}/echo/otlp-allowed-{marker}", headers: [("X-Token", AuditFixture.Placeholder)]);
        Assert.Equal(200, allowed.Status);
        Assert.Equal(403, (await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/blocked/otlp-{marker}")).Status);
        var misplaced = await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/otlp-path-{marker}/{AuditFixture.Placeholder}");
        Assert.Equal(403, misplaced.Status);

        // The store's events for these requests (what /api/events serves).
        var stored = new List<System.Text.Json.JsonElement>();
        await Traffic.WaitUntilAsync(async () =>
        {
            stored = (await proxy.EventsAsync()).Where(e => e.GetProperty("kind").GetString() != "connect" && AdminApiTests.Path(e).Contains(marker, StringComparison.Ordinal)).ToList();
            return stored.Count == 3;
        }, "three events in the store");

        // Each stored event's path, decision and reason arrive in a /v1/logs payload.
        var deadline = Stopwatch.StartNew();
        while (!stored.All(e => collector.Logs.Any(p => Carries(p, e))))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30),
                $"events not at the collector {collector.Url}: {collector.Logs.Count} log payloads, {collector.Metrics.Count} metric payloads; stored: "
                + string.Join(", ", stored.Select(e => e.GetRawText())) + "\nlogs: " + string.Join("\n", collector.Logs.Select(Encoding.UTF8.GetString)) + "\n" + proxy.Output);
            await Task.Delay(100);
        }

        var logs = string.Join("\n", collector.Logs.Select(Encoding.UTF8.GetString));
        Assert.Contains("proxyguard.decision", logs, StringComparison.Ordinal);
        Assert.Contains("rule-deny", logs, StringComparison.Ordinal);
        Assert.Contains("placeholder-position", logs, StringComparison.Ordinal);
        Assert.Contains("proxyguard", logs, StringComparison.Ordinal); // service.name

        // Metrics: a proxyguard_ family under its Prometheus name.
        await Traffic.WaitUntilAsync(() => Task.FromResult(collector.Metrics.Any(p => Encoding.UTF8.GetString(p).Contains("proxyguard_requests_total", StringComparison.Ordinal))),
            "proxyguard_requests_total at the collector", 30);

        // Never a placeholder or a real value, in any payload.
        foreach (var payload in collector.Logs.Concat(collector.Metrics))
        {
            var text = Encoding.UTF8.GetString(payload);
            Assert.DoesNotContain(AuditFixture.Placeholder, text, StringComparison.Ordinal);
            Assert.DoesNotContain(AuditFixture.SecretValue, text, StringComparison.Ordinal);
        }

        var metrics = await MetricsTests.ScrapeAsync(proxy);
        Assert.True(metrics.Value("proxyguard_otlp_events_exported_total") >= 3);
        Assert.Equal(0, metrics.Value("proxyguard_otlp_events_dropped_total", ("reason", "export-failed")));
        Assert.Equal(0, metrics.Value("proxyguard_otlp_events_dropped_total", ("reason", "queue-full")));
    }

    [Fact]
    public async Task An_unreachable_collector_does_not_slow_requests_and_its_losses_are_counted()
    {
        int closedPort;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            closedPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        await using var proxy = await StartAsync("otlp-down", $"http://127.0.0.1:{closedPort}");
        var https = _f.Origin.HttpsPort;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(200, (await Traffic.GetAsync(proxy, $"https://localhost:{https}/echo/otlp-down-{i}")).Status);
        }

        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"20 requests took {sw.Elapsed.TotalSeconds:F1} s");
        await Traffic.WaitUntilAsync(
            async () => (await MetricsTests.ScrapeAsync(proxy)).Value("proxyguard_otlp_events_dropped_total", ("reason", "export-failed")) >= 20,
            "the failed exports to be counted", 60);
        Assert.Equal(0, (await MetricsTests.ScrapeAsync(proxy)).Value("proxyguard_otlp_events_exported_total"));
        Assert.False(proxy.HasExited);
    }

    private Task<ProxyProcess> StartAsync(string name, string endpoint)
    {
        var environment = new Dictionary<string, string>(AuditFixture.Environment)
        {
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
            ["OTEL_EXPORTER_OTLP_TIMEOUT"] = "2000",
        };
        return ProxyProcess.StartAsync(Path.Combine(_f.Dir.Path, name), _f.Policy, ["--resolve", "origin.test=127.0.0.1", "--otlp-endpoint", endpoint], environment);
    }

    /// <summary>The payload holds the event's path, decision and reason as strings (protobuf keeps UTF-8 strings as they are).</summary>
    private static bool Carries(byte[] payload, System.Text.Json.JsonElement e)
    {
        var text = Encoding.UTF8.GetString(payload);
        var path = AdminApiTests.Path(e);
        var decision = e.GetProperty("decision").GetString()!;
        var reason = e.TryGetProperty("reason", out var r) && r.ValueKind == System.Text.Json.JsonValueKind.String ? r.GetString()! : string.Empty;
        return text.Contains(path, StringComparison.Ordinal) && text.Contains(decision, StringComparison.Ordinal) && text.Contains(reason, StringComparison.Ordinal);
    }

    /// <summary>An OTLP/HTTP collector on loopback that keeps every request body by signal.</summary>
    private sealed class Collector : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private Collector(WebApplication app)
        {
            _app = app;
        }

        public ConcurrentQueue<byte[]> Logs { get; } = new();

        public ConcurrentQueue<byte[]> Metrics { get; } = new();

        public string Url { get; private set; } = string.Empty;

        public static async Task<Collector> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var collector = new Collector(app);
            app.MapPost("/v1/logs", (HttpContext c) => Receive(c, collector.Logs));
            app.MapPost("/v1/metrics", (HttpContext c) => Receive(c, collector.Metrics));
            await app.StartAsync();
            collector.Url = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
                .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First();
            return collector;
        }

        private static async Task Receive(HttpContext context, ConcurrentQueue<byte[]> into)
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            into.Enqueue(body.ToArray());
            context.Response.ContentType = "application/x-protobuf";
            context.Response.StatusCode = 200;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
