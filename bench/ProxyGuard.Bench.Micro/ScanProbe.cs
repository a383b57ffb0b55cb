using System.Diagnostics;
using ProxyGuard.Inspection;

namespace ProxyGuard.Bench.Micro;

/// <summary>
/// <c>-- scan</c>: the three benchmark bodies, each scanned 300 times; prints the fastest run and the median as MB/s.
/// On a machine shared with other work, BenchmarkDotNet's mean mostly measures the other work; the fastest of many
/// runs is the closest to the scanner's own speed. Run with <c>DOTNET_TieredCompilation=0</c> so every run is
/// fully optimised code.
/// </summary>
internal static class ScanProbe
{
    public static void Run()
    {
        var scanner = Bodies.Scanner();
        var benign = Bodies.BenignJson();
        var secrets = Bodies.WithSecrets();
        var gzip = Bodies.Gzip(benign);
        Measure("benign JSON 1 MiB", benign.Length, () => scanner.ScanBody(benign, null, "application/json", "api.example.com"));
        Measure("JSON 1 MiB with ~128 secrets", secrets.Length, () => scanner.ScanBody(secrets, null, "application/json", "api.example.com"));
        Measure("benign JSON 1 MiB, gzip", benign.Length, () => scanner.ScanBody(gzip, "gzip", "application/json", "api.example.com"));
    }

    public static void Loop(int count)
    {
        var scanner = Bodies.Scanner();
        var benign = Bodies.BenignJson();
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            scanner.ScanBody(benign, null, "application/json", "api.example.com");
        }

        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        Console.WriteLine($"{count} scans of the benign body: {seconds * 1000 / count:F3} ms each, {benign.Length * (double)count / seconds / 1e6:F0} MB/s");
    }

    private static void Measure(string name, int bytes, Func<ScanResult> scan)
    {
        for (var i = 0; i < 30; i++)
        {
            scan();
        }

        var times = new double[300];
        for (var i = 0; i < times.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            scan();
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        Array.Sort(times);
        Console.WriteLine($"| {name} | {times[0] * 1e3:F3} ms | {bytes / times[0] / 1e6:F0} | {times[times.Length / 2] * 1e3:F3} ms | {bytes / times[times.Length / 2] / 1e6:F0} |");
    }
}
