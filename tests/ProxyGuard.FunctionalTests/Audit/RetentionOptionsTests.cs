using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>Retention of the audit store is set on the command line and applied by the running proxy.</summary>
[Collection("proxy")]
public sealed class RetentionOptionsTests
{
    private const string Policy = """
        version: 1
        default: deny
        rules: []
        """;

    [Fact]
    public async Task Max_count_is_applied_to_the_store_at_start()
    {
        using var dir = new TempDir();
        await using (var first = await ProxyProcess.StartAsync(dir.Path, Policy))
        {
            var proxy = new Uri(first.ProxyUrl);
            for (var i = 0; i < 20; i++)
            {
                using var tcp = new System.Net.Sockets.TcpClient();
                await tcp.ConnectAsync(proxy.Host, proxy.Port);
                await tcp.GetStream().WriteAsync(System.Text.Encoding.ASCII.GetBytes($"CONNECT denied{i}.test:443 HTTP/1.1\r\n\r\n"));
                var buffer = new byte[512];
                _ = await tcp.GetStream().ReadAsync(buffer);
            }

            await first.WaitForEventAsync(e => e.GetProperty("host").GetString() == "denied19.test");
            Assert.Equal(20, (await first.EventsAsync()).Count);
            first.Signal(15);
            Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }

        await using var second = await ProxyProcess.StartWithPolicyFileAsync(
            dir.Path, Path.Combine(dir.Path, "policy.yaml"), ["--events-max-count", "5", "--events-retain", "720h", "--events-max-size", "64MiB"]);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        List<System.Text.Json.JsonElement> events;
        do
        {
            events = await second.EventsAsync();
            await Task.Delay(100);
        }
        while (events.Count > 5 && sw.Elapsed < TimeSpan.FromSeconds(20));

        Assert.Equal(5, events.Count);
        Assert.Equal("denied19.test", events[^1].GetProperty("host").GetString());
    }

    [Theory]
    [InlineData("--events-retain", "forever")]
    [InlineData("--events-max-size", "lots")]
    [InlineData("--events-max-count", "-3")]
    public async Task Invalid_retention_options_are_bad_usage(string option, string value)
    {
        using var dir = new TempDir();
        var policy = dir.Write("policy.yaml", Policy);
        var result = await Cli.RunAsync(dir.Path, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--ca-dir", dir.File("ca"), "--data-dir", dir.File("data"), option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(option, result.Stderr, StringComparison.Ordinal);
    }
}
