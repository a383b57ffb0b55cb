using System.Collections.Concurrent;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>Events of completed requests survive SIGKILL and SIGTERM; a data dir that cannot hold the store stops the start.</summary>
[Collection("proxy")]
public sealed class DurabilityTests : IClassFixture<AuditFixture>
{
    private readonly AuditFixture _f;

    public DurabilityTests(AuditFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task After_SIGKILL_every_completed_request_has_its_event()
    {
        var first = await _f.StartProxyAsync("sigkill");
        var sent = await SendMixAsync(first, _f.Origin, tasks: 4, perTask: 50);

        // Longer than one batch interval (50 ms) after the last response, then kill -9. The test
        // deliberately does not read the events before the kill.
        await Task.Delay(1000);
        first.KillHard();
        Assert.Equal(128 + 9, await first.WaitForExitAsync(TimeSpan.FromSeconds(30))); // killed by SIGKILL, no shutdown ran
        await first.DisposeAsync();

        await using var second = await AuditFixture.RestartAsync(first);
        AssertAllPresent(sent, await second.EventsAsync());
    }

    [Fact]
    public async Task SIGTERM_flushes_events_and_exits_0()
    {
        var first = await _f.StartProxyAsync("sigterm");
        var sent = await SendMixAsync(first, _f.Origin, tasks: 3, perTask: 30);

        first.Signal(15); // at once: whatever is still queued must be flushed by the shutdown
        Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.DoesNotContain("Unhandled", first.Output, StringComparison.Ordinal);
        await first.DisposeAsync();

        await using var second = await AuditFixture.RestartAsync(first);
        var events = await second.EventsAsync();
        AssertAllPresent(sent, events);

        // The restarted store continues the id sequence.
        var ids = events.Select(e => e.GetProperty("id").GetInt64()).ToList();
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public async Task A_data_dir_that_is_a_file_stops_the_start_with_one_line()
    {
        var dir = Path.Combine(_f.Dir.Path, "datafile");
        Directory.CreateDirectory(dir);
        var notADir = Path.Combine(dir, "data");
        await File.WriteAllTextAsync(notADir, "not a directory\n");
        var result = await RunAsync(dir, notADir);
        AssertOneLineStartFailure(result);
    }

    [Fact]
    public async Task An_events_db_that_is_a_directory_or_not_a_database_stops_the_start()
    {
        var asDirectory = Path.Combine(_f.Dir.Path, "dbdir");
        Directory.CreateDirectory(Path.Combine(asDirectory, "data", "events.db"));
        var result = await RunAsync(asDirectory, Path.Combine(asDirectory, "data"));
        AssertOneLineStartFailure(result);
        Assert.Contains("events.db", result.Stderr, StringComparison.Ordinal);

        var garbage = Path.Combine(_f.Dir.Path, "dbgarbage");
        Directory.CreateDirectory(Path.Combine(garbage, "data"));
        await File.WriteAllBytesAsync(Path.Combine(garbage, "data", "events.db"), Enumerable.Repeat((byte)0x5a, 8192).ToArray());
        result = await RunAsync(garbage, Path.Combine(garbage, "data"));
        AssertOneLineStartFailure(result);
        Assert.Contains("events.db", result.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Sends allow and deny requests (HTTPS and plain HTTP) with unique markers; returns marker → expected decision for every completed response.</summary>
    internal static async Task<ConcurrentDictionary<string, string>> SendMixAsync(ProxyProcess proxy, TestOrigin origin, int tasks, int perTask)
    {
        var ports = (Https: origin.HttpsPort, Http: origin.HttpPort);
        var sent = new ConcurrentDictionary<string, string>();
        await Task.WhenAll(Enumerable.Range(0, tasks).Select(t => Task.Run(async () =>
        {
            using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
            for (var i = 0; i < perTask; i++)
            {
                var marker = Traffic.Marker();
                var deny = i % 4 == 0;
                var path = deny ? $"/echo/blocked/{marker}" : $"/echo/durable/{marker}";
                var url = t % 2 == 0 ? $"https://localhost:{ports.Https}{path}" : $"http://localhost:{ports.Http}{path}";
                var reply = await Traffic.SendAsync(client, HttpMethod.Get, url);
                Assert.Equal(deny ? 403 : 200, reply.Status);
                sent[marker] = deny ? "deny" : "allow";
            }
        })));
        Assert.Equal(tasks * perTask, sent.Count);
        return sent;
    }

    internal static void AssertAllPresent(ConcurrentDictionary<string, string> sent, List<JsonElement> events)
    {
        var byMarker = events.Where(e => e.GetProperty("kind").GetString() == "request")
            .Select(e => (Path: AdminApiTests.Path(e), Event: e))
            .Where(x => x.Path.StartsWith("/echo/durable/", StringComparison.Ordinal) || x.Path.StartsWith("/echo/blocked/", StringComparison.Ordinal))
            .GroupBy(x => x.Path[(x.Path.LastIndexOf('/') + 1)..])
            .ToDictionary(g => g.Key, g => g.Select(x => x.Event).ToList());
        var missing = sent.Keys.Where(k => !byMarker.ContainsKey(k)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of {sent.Count} completed requests have no event");
        foreach (var (marker, decision) in sent)
        {
            var e = Assert.Single(byMarker[marker]);
            Assert.Equal(decision, e.GetProperty("decision").GetString());
            Assert.Equal(decision == "deny" ? 403 : 200, e.GetProperty("status").GetInt32());
        }
    }

    private async Task<CommandResult> RunAsync(string directory, string dataDir)
    {
        var policy = Path.Combine(directory, "policy.yaml");
        await File.WriteAllTextAsync(policy, _f.Policy);
        return await Cli.RunProgramAsync("dotnet",
            [ProxyProcess.DllPath, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--ca-dir", Path.Combine(directory, "ca"), "--data-dir", dataDir],
            directory, new Dictionary<string, string>(AuditFixture.Environment) { ["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken },
            TimeSpan.FromSeconds(60));
    }

    private static void AssertOneLineStartFailure(CommandResult result)
    {
        Assert.True(result.ExitCode == 1, $"exit {result.ExitCode}\n{result.All}");
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line on stderr:\n" + result.Stderr);
        Assert.StartsWith("proxyguard: cannot start: ", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("listening", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.All, StringComparison.Ordinal);
    }
}
