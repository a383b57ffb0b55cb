using System.Diagnostics;
using ProxyGuard.Fuzz;
using SharpFuzz;

// Usage:
//   ProxyGuard.Fuzz TARGET                       run TARGET under AFL++ (afl-fuzz starts this; see fuzz/run.sh)
//   ProxyGuard.Fuzz --replay TARGET PATH...      run files (or every file in directories) through TARGET in-process
//   ProxyGuard.Fuzz --mutate TARGET SECONDS DIR  uninstrumented random mutation of DIR's seeds for SECONDS (no AFL++ needed)
//                                                 (also reports inputs whose time per byte is over 50x the median)
//   ProxyGuard.Fuzz --list                       print the target names
if (args.Length == 1 && args[0] == "--list")
{
    foreach (var name in FuzzTargets.All.Keys)
    {
        Console.WriteLine(name);
    }

    return 0;
}

if (args.Length >= 3 && args[0] == "--replay")
{
    var target = Find(args[1]);
    var failures = 0;
    var count = 0;
    foreach (var file in Files(args.Skip(2)))
    {
        count++;
        try
        {
            target(File.ReadAllBytes(file));
        }
        catch (Exception ex)
        {
            failures++;
            Console.Error.WriteLine($"{file}: {ex.GetType().Name}: {ex.Message}");
        }
    }

    Console.WriteLine($"{args[1]}: {count} inputs replayed, {failures} failed");
    return failures == 0 ? 0 : 1;
}

if (args.Length == 4 && args[0] == "--mutate")
{
    return Mutator.Run(args[1], Find(args[1]), TimeSpan.FromSeconds(double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)), args[3]);
}

if (args.Length == 3 && args[0] == "--brotli")
{
    // Seed helper: brotli-compresses a file after its first byte (the content-type selector of the scan targets).
    var input = File.ReadAllBytes(args[1]);
    using var output = new MemoryStream();
    output.WriteByte(input.Length > 0 ? input[0] : (byte)0);
    using (var br = new System.IO.Compression.BrotliStream(output, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
    {
        br.Write(input.AsSpan(Math.Min(1, input.Length)));
    }

    File.WriteAllBytes(args[2], output.ToArray());
    return 0;
}

if (args.Length == 1 && FuzzTargets.All.TryGetValue(args[0], out var aflTarget))
{
    Fuzzer.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        aflTarget(buffer.ToArray());
    });
    return 0;
}

Console.Error.WriteLine("usage: ProxyGuard.Fuzz TARGET | --replay TARGET PATH... | --mutate TARGET SECONDS DIR | --list");
Console.Error.WriteLine("targets: " + string.Join(", ", FuzzTargets.All.Keys));
return 2;

static Action<byte[]> Find(string name) =>
    FuzzTargets.All.TryGetValue(name, out var target) ? target : throw new ArgumentException($"unknown target '{name}'");

static IEnumerable<string> Files(IEnumerable<string> paths)
{
    foreach (var path in paths)
    {
        if (Directory.Exists(path))
        {
            foreach (var file in Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                yield return file;
            }
        }
        else if (File.Exists(path))
        {
            yield return path;
        }
    }
}

/// <summary>A plain in-process mutation loop (bit flips, byte edits, splices, interesting values) for machines without AFL++.</summary>
internal static class Mutator
{
    private const double SlowFactor = 50;

    public static int Run(string name, Action<byte[]> target, TimeSpan duration, string seedDirectory)
    {
        var seeds = Directory.Exists(seedDirectory)
            ? Directory.EnumerateFiles(seedDirectory).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToList()
            : [];
        if (seeds.Count == 0)
        {
            seeds.Add([]);
        }

        var random = new Random(Environment.TickCount);
        var crashDirectory = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(seedDirectory))!, "..", "findings", name, "mutate-crashes");
        var sw = Stopwatch.StartNew();
        long executions = 0;
        var crashes = 0;
        var slowest = TimeSpan.Zero;
        var perByteSamples = new List<double>();
        var median = 0.0;
        var slow = 0;
        while (sw.Elapsed < duration)
        {
            var input = Mutate(seeds[random.Next(seeds.Count)], seeds[random.Next(seeds.Count)], random);
            var started = Stopwatch.GetTimestamp();
            try
            {
                target(input);
            }
            catch (Exception ex)
            {
                crashes++;
                Directory.CreateDirectory(crashDirectory);
                var file = Path.Combine(crashDirectory, $"crash-{crashes}-{ex.GetType().Name}");
                File.WriteAllBytes(file, input);
                Console.Error.WriteLine($"{name}: {ex.GetType().Name}: {ex.Message} -> {file}");
            }

            var elapsed = Stopwatch.GetElapsedTime(started);
            if (elapsed > slowest)
            {
                slowest = elapsed;
            }

            // Slow-input report: time per byte far above the median of this run (and at least 1 ms, above noise).
            var perByte = elapsed.TotalMilliseconds / (input.Length + 16);
            perByteSamples.Add(perByte);
            if (perByteSamples.Count == 512 || (perByteSamples.Count > 512 && perByteSamples.Count % 4096 == 0))
            {
                median = perByteSamples.Order().ElementAt(perByteSamples.Count / 2);
            }

            if (median > 0 && elapsed.TotalMilliseconds >= 1 && perByte > SlowFactor * median && slow < 20 && StillSlow(target, input, SlowFactor * median))
            {
                slow++;
                var slowDirectory = Path.Combine(Path.GetDirectoryName(crashDirectory)!, "mutate-slow");
                Directory.CreateDirectory(slowDirectory);
                var file = Path.Combine(slowDirectory, $"slow-{slow}");
                File.WriteAllBytes(file, input);
                Console.Error.WriteLine($"{name}: slow input, {perByte * 1e6:F0} ns/byte ({perByte / median:F0}x the median), {input.Length} bytes, {elapsed.TotalMilliseconds:F1} ms -> {file}");
            }

            executions++;
            if (input.Length < 4096 && random.Next(2000) == 0)
            {
                seeds.Add(input);
            }
        }

        Console.WriteLine($"{name}: {executions} executions in {sw.Elapsed.TotalSeconds:F0} s, {crashes} crashes, slowest input {slowest.TotalMilliseconds:F1} ms, {slow} slow inputs (over {SlowFactor}x the median time per byte)");
        return crashes == 0 ? 0 : 1;
    }

    /// <summary>Runs a flagged input three more times: slow only if the fastest run is still over the limit (not a GC or a preemption).</summary>
    private static bool StillSlow(Action<byte[]> target, byte[] input, double limitPerByte)
    {
        var best = double.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                target(input);
            }
            catch (Exception)
            {
                return false;
            }

            best = Math.Min(best, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        return best >= 1 && best / (input.Length + 16) > limitPerByte;
    }

    private static readonly byte[] s_interesting = [0, 1, 0x7F, 0x80, 0xFF, (byte)'%', (byte)'.', (byte)'/', (byte)':', (byte)'\r', (byte)'\n', (byte)'[', (byte)']', (byte)'0', (byte)'x', (byte)'"', (byte)'\\', (byte)' '];

    private static byte[] Mutate(byte[] seed, byte[] other, Random random)
    {
        var data = new List<byte>(seed);
        var rounds = 1 + random.Next(8);
        for (var r = 0; r < rounds; r++)
        {
            switch (random.Next(7))
            {
                case 0 when data.Count > 0:
                    var bit = random.Next(data.Count * 8);
                    data[bit / 8] ^= (byte)(1 << (bit % 8));
                    break;
                case 1 when data.Count > 0:
                    data[random.Next(data.Count)] = (byte)random.Next(256);
                    break;
                case 2:
                    data.Insert(random.Next(data.Count + 1), s_interesting[random.Next(s_interesting.Length)]);
                    break;
                case 3 when data.Count > 0:
                    // Remove up to 16 bytes (the old count could run past the end and end the whole run).
                    var at = random.Next(data.Count);
                    data.RemoveRange(at, random.Next(Math.Min(16, data.Count - at) + 1));
                    break;
                case 4 when other.Length > 0:
                    var start = random.Next(other.Length);
                    var len = random.Next(Math.Min(64, other.Length - start) + 1);
                    data.InsertRange(random.Next(data.Count + 1), other.AsSpan(start, len).ToArray());
                    break;
                case 5 when data.Count > 0:
                    var from = random.Next(data.Count);
                    var count = random.Next(Math.Min(32, data.Count - from) + 1);
                    var chunk = data.GetRange(from, count);
                    data.InsertRange(random.Next(data.Count + 1), chunk);
                    break;
                case 6 when data.Count > 0:
                    data.RemoveRange(random.Next(data.Count), 0);
                    data[random.Next(data.Count)] = s_interesting[random.Next(s_interesting.Length)];
                    break;
            }
        }

        return data.Count > 64 * 1024 ? data.GetRange(0, 64 * 1024).ToArray() : data.ToArray();
    }
}
