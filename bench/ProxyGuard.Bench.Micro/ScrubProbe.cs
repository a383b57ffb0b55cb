using System.Text;
using ProxyGuard.Inspection.Matching;
using ProxyGuard.Inspection.Tests.Complexity;

namespace ProxyGuard.Bench.Micro;

/// <summary>
/// <c>-- scrub</c>: throughput of the shared real-value matcher (what the response scrubber and the request leak check
/// run) over 1 MiB bodies of different shapes, with 3 known values: MB/s of thread CPU, fastest of 7 runs.
/// </summary>
internal static class ScrubProbe
{
    public static void Run()
    {
        var matcher = new RealValueMatcher(
        [
            new KnownValue(0, Encoding.UTF8.GetBytes("ghp_synthetic0123456789abcdefABCDEF0123")),
            new KnownValue(1, Encoding.UTF8.GetBytes("sk-synthetic/with+chars\"and\\quotes é")),
            new KnownValue(2, Encoding.UTF8.GetBytes("npm_synthetic_value_9876543210")),
        ]);
        var bodies = new (string Name, byte[] Body)[]
        {
            ("benign JSON", Bodies.BenignJson()),
            ("JSON with escapes (\\n \\\" \\u00e9 \\/)", Fill("{\"text\":\"line one\\nline \\\"two\\\" caf\\u00e9 a\\/b c+d\",\"n\":12345},")),
            ("HTML (&amp; &#39; + %20)", Fill("<a href=\"/p?q=a+b&amp;r=%20x\">Tom &amp; Jerry&#39;s</a> ")),
            ("base64 lines", Fill(Convert.ToBase64String(Encoding.UTF8.GetBytes(new string('x', 45))) + "\n")),
            ("plain text", Fill("The quick brown fox jumps over the lazy dog. ")),
            ("base64 of base64 (manifest via contents API)", Fill(string.Join("\\n", Convert.ToBase64String(Encoding.UTF8.GetBytes(
                "apiVersion: v1\nkind: Secret\ndata:\n  token: " + Convert.ToBase64String(Encoding.UTF8.GetBytes(new string('t', 40))) + "\n")).Chunk(60).Select(c => new string(c))) + "\\n")),
            ("UTF-16LE text", Encoding.Unicode.GetBytes(Encoding.UTF8.GetString(Fill("The quick brown fox jumps over the lazy dog. "), 0, 1 << 19))),
            ("binary (random)", RandomBytes()),

            // Adversarial repetitions (the shapes of Secrets.Tests' Adversarial_repetitions_are_linear).
            ("adversarial \\u005C", Fill("\\u005C")),
            ("adversarial &#x", Fill("&#x")),
            ("adversarial \\\\", Fill("\\\\")),
            ("adversarial %", Fill("%")),
            ("adversarial %25", Fill("%25")),
            ("adversarial &amp;", Fill("&amp;")),
            ("adversarial value prefix", Fill("sk-synthetic/with+")),
        };
        Console.WriteLine("| body (1 MiB) | MB/s |");
        Console.WriteLine("|---|---:|");
        foreach (var (name, body) in bodies)
        {
            _ = matcher.FindAll(body);
            var best = long.MaxValue;
            for (var r = 0; r < 7; r++)
            {
                var start = ThreadCpu.NowNanoseconds();
                _ = matcher.FindAll(body);
                best = Math.Min(best, ThreadCpu.NowNanoseconds() - start);
            }

            Console.WriteLine($"| {name} | {body.Length / (best / 1e9) / 1e6:F0} |");
        }
    }

    private static byte[] RandomBytes()
    {
        var bytes = new byte[1 << 20];
        new Random(42).NextBytes(bytes);
        return bytes;
    }

    private static byte[] Fill(string unit)
    {
        var builder = new StringBuilder(1 << 20);
        while (builder.Length < 1 << 20)
        {
            builder.Append(unit);
        }

        return Encoding.UTF8.GetBytes(builder.ToString(0, 1 << 20));
    }
}
