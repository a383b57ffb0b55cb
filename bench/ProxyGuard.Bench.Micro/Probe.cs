using System.Diagnostics;
using System.Text;
using ProxyGuard.Inspection;
using ProxyGuard.Inspection.Scanning;

namespace ProxyGuard.Bench.Micro;

/// <summary>Quick per-stage timing (<c>-- probe</c>), for finding where the time goes; BenchmarkDotNet gives the real numbers.</summary>
internal static class Probe
{
    public static void Run()
    {
        var body = Bodies.BenignJson();
        var chars = Encoding.Latin1.GetString(body);
        var core = new ScannerCore(new ScannerOptions());
        Time("latin1 widen", () => Encoding.Latin1.GetString(body).Length);
        Time("case-sensitive anchors", () => Count(chars.AsSpan(), core.CaseSensitive!));
        Time("keywords", () => Count(chars.AsSpan(), core.Keywords!));
        Time("@", () => chars.AsSpan().Count('@'));
        Time("escapes", () => chars.AsSpan().Count('\\') + chars.AsSpan().Count('%'));
        Time("base64 runs", () =>
        {
            var n = 0;
            var p = 0;
            while (Base64RunFinder.FindNext(chars.AsSpan(), p, out _, out var end))
            {
                n++;
                p = end;
            }

            return n;
        });
        var anchors = ProxyGuard.Inspection.Detectors.BuiltinCatalog.All.SelectMany(d => d.Anchors).Distinct().ToArray();
        Console.WriteLine($"anchors: {anchors.Length}, short(<4): {anchors.Count(a => a.Length < 4)}");
        foreach (var size in new[] { 8, 16, 24, 32 })
        {
            var groups = anchors.Order(StringComparer.Ordinal).Chunk(size).Select(g => System.Buffers.SearchValues.Create(g, StringComparison.Ordinal)).ToArray();
            Time($"groups of {size}", () =>
            {
                var n = 0;
                foreach (var g in groups)
                {
                    n += chars.AsSpan().IndexOfAny(g) >= 0 ? 1 : 0;
                }

                return n;
            });
        }

        var longOnes = System.Buffers.SearchValues.Create(anchors.Where(a => a.Length >= 4).ToArray(), StringComparison.Ordinal);
        Time("long anchors only", () => chars.AsSpan().IndexOfAny(longOnes));
        var shortOnes = System.Buffers.SearchValues.Create(anchors.Where(a => a.Length < 4).ToArray(), StringComparison.Ordinal);
        Time("short anchors only", () => chars.AsSpan().IndexOfAny(shortOnes));
        var scanner = new ContentScanner(new ScannerOptions());
        Time("ScanBody", () => scanner.ScanBody(body, null, "application/json", "h").Findings.Count);
    }

    private static int Count(ReadOnlySpan<char> text, AnchorTable table)
    {
        var n = 0;
        var p = 0;
        while (p < text.Length)
        {
            var i = -1;
            foreach (var g in table.Groups)
            {
                var k = text[p..].IndexOfAny(g);
                if (k >= 0 && (i < 0 || k < i))
                {
                    i = k;
                }
            }

            if (i < 0)
            {
                break;
            }

            n++;
            p += i + 1;
        }

        return n;
    }

    private delegate int Work();

    private static void Time(string name, Work work)
    {
        var result = 0;
        for (var i = 0; i < 40; i++)
        {
            result = work();
        }

        var watch = Stopwatch.StartNew();
        const int rounds = 60;
        for (var i = 0; i < rounds; i++)
        {
            work();
        }

        var ms = watch.Elapsed.TotalMilliseconds / rounds;
        Console.WriteLine($"{name,-25} {ms,8:F3} ms  hits={result}");
    }
}
