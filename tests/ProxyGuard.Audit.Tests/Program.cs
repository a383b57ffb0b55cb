namespace ProxyGuard.Audit.Tests;

/// <summary>
/// Entry point of the test assembly when run as a child process (<c>dotnet ProxyGuard.Audit.Tests.dll durability-child DIR</c>):
/// writes numbered events forever, reporting progress on stdout, until the parent kills it with SIGKILL.
/// </summary>
public static class Program
{
    public const string DurabilityChildMode = "durability-child";
    public static readonly TimeSpan ChildBatchInterval = TimeSpan.FromMilliseconds(50);

    public static async Task<int> Main(string[] args)
    {
        if (args.Length != 2 || args[0] != DurabilityChildMode)
        {
            await Console.Error.WriteLineAsync($"usage: {DurabilityChildMode} DATA_DIR");
            return 2;
        }

        // Never disposed: the parent kills this process without warning.
        var store = EventStore.Open(args[1], new EventStoreOptions { BatchInterval = ChildBatchInterval, RetainFor = null, MaxEvents = null });
        long seq = 0;
        for (var round = 1; ; round++)
        {
            for (var i = 0; i < 25; i++)
            {
                seq++;
                var e = Events.Make(seq, seq % 2 == 0 ? AuditDecisions.Deny : AuditDecisions.Allow);
                if (e.Decision == AuditDecisions.Deny)
                {
                    await store.WriteAsync(e, CancellationToken.None);
                }
                else if (!store.TryWrite(e))
                {
                    await Console.Out.WriteLineAsync($"dropped {seq}");
                    return 3;
                }
            }

            if (round % 10 == 0)
            {
                await store.FlushAsync();
                await Console.Out.WriteLineAsync($"flushed up to {seq}");
            }
            else
            {
                await Console.Out.WriteLineAsync($"written up to {seq}");
            }

            await Task.Delay(5);
        }
    }
}
