using System.Diagnostics;
using System.Globalization;
using ProxyGuard.Audit;
using ProxyGuard.Bench.Events;

// Sustained event-store throughput: several producers write realistic events as fast as they can
// (allow events with TryWrite, backing off when refused; deny events with WriteAsync) while the single
// writer commits batches. Reports committed events/s over the measured window after a warm-up.
var options = BenchOptions.Parse(args);
if (options.Central is not null)
{
    return await CentralBench.RunAsync(options);
}

var directory = options.Directory ?? Path.Combine(Path.GetTempPath(), "pg-bench-events-" + Guid.NewGuid().ToString("N"));
var ownsDirectory = options.Directory is null;
var warmup = TimeSpan.FromSeconds(1);

var store = EventStore.Open(directory, new EventStoreOptions { RetainFor = null, MaxEvents = null });
using var stop = new CancellationTokenSource();
long offered = 0;
var producers = Enumerable.Range(0, options.Producers).Select(p => Task.Run(async () =>
{
    var factory = new EventFactory(p);
    var random = new Random(1000 + p);
    long mine = 0;
    while (!stop.IsCancellationRequested)
    {
        var deny = random.NextDouble() < options.DenyShare;
        var e = factory.Next(deny);
        if (deny || options.NoDrops)
        {
            try
            {
                await store.WriteAsync(e, stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        else if (!store.TryWrite(e))
        {
            await Task.Delay(1);
        }

        if (++mine % 1024 == 0)
        {
            Interlocked.Add(ref offered, 1024);
            await Task.Yield();
        }
    }
})).ToArray();

await Task.Delay(warmup);
var startWritten = store.WrittenEvents;
var startDropped = store.DroppedEvents;
var startOffered = Interlocked.Read(ref offered);
var startCpu = Process.GetCurrentProcess().TotalProcessorTime;
var clock = Stopwatch.StartNew();
var perSecond = new List<double>();
var last = startWritten;
var lastTime = TimeSpan.Zero;
while (options.Seconds - clock.Elapsed.TotalSeconds > 0.05)
{
    await Task.Delay(TimeSpan.FromSeconds(Math.Min(1, options.Seconds - clock.Elapsed.TotalSeconds)));
    var now = store.WrittenEvents;
    var elapsed = clock.Elapsed;
    perSecond.Add((now - last) / (elapsed - lastTime).TotalSeconds);
    last = now;
    lastTime = elapsed;
}

var seconds = clock.Elapsed.TotalSeconds;
var committed = store.WrittenEvents - startWritten;
var dropped = store.DroppedEvents - startDropped;
var offeredInWindow = Interlocked.Read(ref offered) - startOffered;
var depth = store.QueueDepth;
var cpu = Process.GetCurrentProcess().TotalProcessorTime - startCpu;
await stop.CancelAsync();
await Task.WhenAll(producers);
var flush = Stopwatch.StartNew();
await store.DisposeAsync();
flush.Stop();

var dbBytes = Directory.GetFiles(directory, "events.db*").Sum(f => new FileInfo(f).Length);
var inv = CultureInfo.InvariantCulture;
Console.WriteLine(string.Create(inv, $"producers={options.Producers} deny-share={options.DenyShare} cores={Environment.ProcessorCount} window={seconds:F1}s (after {warmup.TotalSeconds:F0}s warm-up)"));
Console.WriteLine(string.Create(inv, $"committed: {committed / seconds:N0} events/s sustained ({committed:N0} events)"));
Console.WriteLine(string.Create(inv, $"process CPU {cpu.TotalSeconds / seconds:F2} cores busy, {cpu.TotalMicroseconds / Math.Max(1, committed):F1} us CPU per committed event (producers + writer)"));
Console.WriteLine(string.Create(inv, $"per second: {string.Join(", ", perSecond.Select(v => v.ToString("N0", inv)))}"));
Console.WriteLine(string.Create(inv, $"offered ~{offeredInWindow / seconds:N0} events/s; allow events dropped (queue full): {dropped:N0}; queue depth at end {depth:N0}"));
Console.WriteLine(string.Create(inv, $"dispose (flush of remaining queue) {flush.Elapsed.TotalMilliseconds:N0} ms; database {dbBytes / 1048576.0:N1} MiB, {store.WrittenEvents:N0} events total"));
if (ownsDirectory)
{
    Directory.Delete(directory, recursive: true);
}

return 0;
