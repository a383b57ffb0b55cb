namespace ProxyGuard.Audit.Tests;

internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pg-audit-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a killed child may still hold files for a moment.
        }
    }
}

internal sealed class FakeClock : TimeProvider
{
    private DateTimeOffset _now;

    public FakeClock(DateTimeOffset start)
    {
        _now = start;
    }

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

internal static class Events
{
    public static readonly DateTimeOffset T0 = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static AuditEvent Make(long seq, string decision = AuditDecisions.Allow, string client = "agent-1", string host = "api.example.com") => new()
    {
        Time = T0.AddMilliseconds(seq),
        Client = client,
        ClientAddress = "10.0.0.7",
        Kind = AuditKinds.Request,
        Method = "GET",
        Scheme = "https",
        Host = host,
        Port = 443,
        Path = $"/e/{seq}",
        Decision = decision,
        Rule = "rule-1",
        Reason = "matched rule-1",
        Status = 200,
        RequestBytes = seq,
        ResponseBytes = 2 * seq,
        DurationMs = 1.5,
    };

    public static EventStoreOptions Options(TimeSpan? batchInterval = null) => new()
    {
        BatchInterval = batchInterval ?? TimeSpan.FromMilliseconds(10),
        RetainFor = null,
        MaxEvents = null,
    };

    public static List<AuditEvent> ReadAll(EventStore store, EventQuery? filter = null)
    {
        var all = new List<AuditEvent>();
        var query = (filter ?? new EventQuery()) with { After = 0, Limit = EventQuery.MaxLimit };
        while (true)
        {
            var page = store.Query(query);
            if (page.Events.Count == 0)
            {
                return all;
            }

            all.AddRange(page.Events);
            query = query with { After = page.Next };
        }
    }

    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("condition not met in time");
            }

            await Task.Delay(10);
        }
    }
}
