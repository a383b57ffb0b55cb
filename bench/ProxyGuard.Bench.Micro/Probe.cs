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
        var core = new ScannerCore(new ScannerOptions());
        var filter = core.BytePrefilter!;
        var windowHits = new Dictionary<string, int>();
        for (var i = 0; i + 4 <= body.Length; i++)
        {
            if (filter.ScalarAccepts(body, i))
            {
                var w = Encoding.Latin1.GetString(body, i, 4);
                windowHits[w] = windowHits.GetValueOrDefault(w) + 1;
            }
        }

        Console.WriteLine("stage-1 windows: " + string.Join(", ", windowHits.OrderByDescending(p => p.Value).Take(30).Select(p => $"[{p.Key}]={p.Value}")));
        Time("byte prefilter (stage 1)", () => Candidates(body, filter, confirm: false));
        Time("  + stage 2 lookups", () => Candidates(body, filter, confirm: true));
        var keys = new Dictionary<string, int>();
        var full = new Dictionary<string, int>();
        Span<int> buf = stackalloc int[128];
        var f = 0;
        while (f < body.Length)
        {
            var c = filter.Collect(body, ref f, buf);
            for (var k = 0; k < c; k++)
            {
                var h = buf[k];
                foreach (var e in Enumerable.Range(0, BytePrefilter.Tables).SelectMany(t => filter.Lookup(body, h, t) ?? []))
                {
                    var key = Encoding.Latin1.GetString(body, h, e.WindowLength);
                    keys[key] = keys.GetValueOrDefault(key) + 1;
                    if (h >= e.Offset && e.MatchesAt(body, h - e.Offset))
                    {
                        var lit = Encoding.Latin1.GetString(e.Bytes);
                        full[lit] = full.GetValueOrDefault(lit) + 1;
                    }
                }
            }
        }

        Console.WriteLine("3-byte keys: " + string.Join(", ", keys.OrderByDescending(p => p.Value).Take(20).Select(p => $"{p.Key}={p.Value}")));
        Console.WriteLine("full literals: " + string.Join(", ", full.OrderByDescending(p => p.Value).Take(20).Select(p => $"{p.Key}={p.Value}")));
        Time("@", () => body.AsSpan().Count((byte)'@'));
        Time("escapes", () => body.AsSpan().Count((byte)'\\') + body.AsSpan().Count((byte)'%'));
        Time("base64 runs (bytes)", () =>
        {
            var n = 0;
            var p = 0;
            while (Base64RunFinder.FindNext(body.AsSpan(), p, out _, out var end))
            {
                n++;
                p = end;
            }

            return n;
        });
        Time("latin1 widen (old path)", () => Encoding.Latin1.GetString(body).Length);
        var scanner = new ContentScanner(new ScannerOptions());
        Time("ScanBody benign", () => scanner.ScanBody(body, null, "application/json", "h").Findings.Count);
        var none = new ContentScanner(new ScannerOptions { BuiltinDetectorIds = [] });
        Time("ScanBody no detectors", () => none.ScanBody(body, null, "application/json", "h").Findings.Count);
        foreach (var id in new[] { "github-token", "gitlab-token", "heroku-api-key", "twilio", "mailgun", "vault-token" })
        {
            var one = new ContentScanner(new ScannerOptions { BuiltinDetectorIds = [id] });
            Time("ScanBody only " + id, () => one.ScanBody(body, null, "application/json", "h").Findings.Count);
        }

        var shallow = new ContentScanner(new ScannerOptions { MaxDepth = 0 });
        Time("ScanBody depth 0", () => shallow.ScanBody(body, null, "application/json", "h").Findings.Count);
        var secrets = Bodies.WithSecrets();
        Time("ScanBody secrets", () => scanner.ScanBody(secrets, null, "application/json", "h").Findings.Count);
    }

    /// <summary>Stage-1 candidates (hits), or with stage 2 the candidates whose 3-byte key is a literal's.</summary>
    private static int Candidates(byte[] body, BytePrefilter filter, bool confirm)
    {
        Span<int> hits = stackalloc int[128];
        var n = 0;
        var from = 0;
        while (from < body.Length)
        {
            var count = filter.Collect(body, ref from, hits);
            if (!confirm)
            {
                n += count;
                continue;
            }

            for (var k = 0; k < count; k++)
            {
                if (filter.Lookup(body, hits[k], 0) is not null || filter.Lookup(body, hits[k], 1) is not null || filter.Lookup(body, hits[k], 2) is not null)
                {
                    n++;
                }
            }
        }

        return n;
    }

    private delegate int Work();

    /// <summary>Prints the fastest of 80 runs (the machine is shared: the minimum is the least disturbed).</summary>
    private static void Time(string name, Work work)
    {
        var result = 0;
        for (var i = 0; i < 20; i++)
        {
            result = work();
        }

        var best = double.MaxValue;
        for (var i = 0; i < 80; i++)
        {
            var start = Stopwatch.GetTimestamp();
            work();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        Console.WriteLine($"{name,-28} {best,8:F3} ms (min)  hits={result}");
    }
}
