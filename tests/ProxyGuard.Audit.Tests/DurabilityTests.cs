using System.Diagnostics;
using System.Globalization;

namespace ProxyGuard.Audit.Tests;

public class DurabilityTests
{
    [Fact]
    public async Task Events_flushed_or_older_than_a_batch_interval_survive_sigkill()
    {
        using var dir = new TempDirectory();
        var dataDir = Path.Combine(dir.Path, "data");
        var host = Environment.ProcessPath;
        if (host is null || Path.GetFileNameWithoutExtension(host) != "dotnet")
        {
            host = "dotnet";
        }

        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(typeof(Program).Assembly.Location);
        start.ArgumentList.Add(Program.DurabilityChildMode);
        start.ArgumentList.Add(dataDir);
        using var child = Process.Start(start)!;

        long flushed = 0;
        long written = 0;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                var line = await child.StandardOutput.ReadLineAsync(timeout.Token)
                    ?? throw new InvalidOperationException("child exited: " + await child.StandardError.ReadToEndAsync());
                var seq = long.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
                Assert.DoesNotContain("dropped", line, StringComparison.Ordinal);
                if (line.StartsWith("flushed", StringComparison.Ordinal))
                {
                    flushed = seq;
                }
                else if (flushed >= 2000)
                {
                    // Everything written up to here was enqueued before this line; give the writer well over
                    // one batch interval (the child keeps writing meanwhile), then kill it without warning.
                    written = seq;
                    break;
                }
            }

            await Task.Delay(Program.ChildBatchInterval * 8);
        }
        finally
        {
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }

        Assert.Equal(137, child.ExitCode);
        await using var store = EventStore.Open(dataDir, Events.Options());
        var events = Events.ReadAll(store);
        Assert.True(events.Count >= written, $"{events.Count} events present, {written} were written more than a batch interval before the kill (flushed {flushed})");
        for (var i = 0; i < events.Count; i++)
        {
            Assert.Equal(i + 1, events[i].Id);
            Assert.Equal($"/e/{i + 1}", events[i].Path);
        }
    }

    [Fact]
    public async Task Abandoning_a_store_without_dispose_keeps_events_older_than_a_batch_interval()
    {
        using var dir = new TempDirectory();
        var interval = TimeSpan.FromMilliseconds(20);
        var abandoned = EventStore.Open(dir.Path, Events.Options(interval));
        for (var i = 1; i <= 500; i++)
        {
            Assert.True(abandoned.TryWrite(Events.Make(i)));
        }

        // The interval commit needs no flush or dispose. How soon it happens depends on the writer thread being
        // scheduled (CI runs test assemblies side by side on two cores), so poll for it within a generous bound
        // instead of asserting one fixed delay.
        var count = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(interval * 5);
            await using var reopened = EventStore.Open(dir.Path, Events.Options());
            count = Events.ReadAll(reopened).Count;
            if (count == 500)
            {
                break;
            }
        }

        Assert.Equal(500, count);
        GC.KeepAlive(abandoned);
    }
}
