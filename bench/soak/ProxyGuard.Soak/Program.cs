using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using ProxyGuard.FunctionalTests.Infrastructure;

// Bounded loopback soak: a real `proxyguard run` process between HttpClients and a local origin, mixed traffic
// (allowed, denied by rule, secret substituted, content-scanned allow and deny, client disconnects) for
// --seconds, with --concurrency workers. Samples the proxy's memory (RSS split into anonymous and file/shared
// pages, and, when dotnet-counters is installed, the managed heap), threads, open descriptors and database size;
// at the end compares requests sent with events stored, summarises memory after --warmup seconds, and prints a
// Markdown report. Exit 1 on any unexpected result.
var seconds = Arg("--seconds", 60);
var concurrency = Arg("--concurrency", 8);
var sampleEvery = TimeSpan.FromSeconds(Arg("--sample", 10));
var warmup = TimeSpan.FromSeconds(Arg("--warmup", 120));
var work = Directory.CreateTempSubdirectory("pg-soak-").FullName;
const string SecretValue = "soak-synthetic-secret-value-0123456789";
const string AdminToken = "soak-admin-token-0123456789abcdef";

using var pki = new TestPki("Soak Origin CA");
var caPem = pki.WriteCaPem(work);
var origin = await StartOriginAsync(pki.Issue(["127.0.0.1", "localhost"]));
var originUrl = origin.Urls.Select(u => new Uri(u)).ToList();
var httpsPort = originUrl.First(u => u.Scheme == "https").Port;
var httpPort = originUrl.First(u => u.Scheme == "http").Port;

var policyPath = Path.Combine(work, "policy.yaml");
await File.WriteAllTextAsync(policyPath, $"""
    version: 1
    default: deny
    network:
      allow_destinations: [127.0.0.0/8]
    content:
      builtin: all
      scan: [headers, query, body]
    tls:
      upstream_ca_files: [{caPem}]
    secrets:
      - name: soak
        value: env:SOAK_SECRET
        sandbox_env: SOAK_TOKEN
        hosts: [localhost, 127.0.0.1]
        in: [headers]
    rules:
      - name: denied-path
        hosts: [localhost, 127.0.0.1]
        ports: [{httpsPort}, {httpPort}]
        paths: ["/denied/**"]
        action: deny
      - name: origin
        hosts: [localhost, 127.0.0.1]
        ports: [{httpsPort}, {httpPort}]
        action: allow
    """);

var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = work };
foreach (var a in new[]
         {
             Path.Combine(AppContext.BaseDirectory, "proxyguard.dll"), "run", "--policy", policyPath, "--listen", "127.0.0.1:0",
             "--admin", "127.0.0.1:0", "--ca-dir", Path.Combine(work, "ca"), "--data-dir", Path.Combine(work, "data"),
         })
{
    psi.ArgumentList.Add(a);
}

psi.Environment["PROXYGUARD_ADMIN_TOKEN"] = AdminToken;
psi.Environment["SOAK_SECRET"] = SecretValue;
psi.Environment["PROXYGUARD_LOG_LEVEL"] = "Warning";
var proxyOutput = new ConcurrentQueue<string>();
var ready = new TaskCompletionSource();
string proxyUrl = string.Empty, adminUrl = string.Empty;
using var proxy = new Process { StartInfo = psi };
proxy.OutputDataReceived += (_, e) =>
{
    if (e.Data is null)
    {
        return;
    }

    proxyOutput.Enqueue(e.Data);
    if (e.Data.StartsWith("proxyguard: proxy listening on ", StringComparison.Ordinal))
    {
        proxyUrl = e.Data["proxyguard: proxy listening on ".Length..];
    }
    else if (e.Data.StartsWith("proxyguard: admin listening on ", StringComparison.Ordinal))
    {
        adminUrl = e.Data["proxyguard: admin listening on ".Length..];
    }
    else if (e.Data.StartsWith("proxyguard: for a sandbox", StringComparison.Ordinal))
    {
        ready.TrySetResult();
    }
};
proxy.ErrorDataReceived += (_, e) =>
{
    if (e.Data is not null)
    {
        proxyOutput.Enqueue(e.Data);
    }
};
proxy.Start();
proxy.BeginOutputReadLine();
proxy.BeginErrorReadLine();
await ready.Task.WaitAsync(TimeSpan.FromSeconds(120));

// The placeholder the sandbox would hold.
var placeholder = await PlaceholderAsync();

// The managed heap as the runtime reports it (System.Runtime meter), through dotnet-counters when installed:
// `dotnet tool install -g dotnet-counters`, or DOTNET_COUNTERS=/path/to/dotnet-counters.
var countersCsv = Path.Combine(work, "counters.csv");
using var counters = StartCounters(proxy.Id, countersCsv, sampleEvery);

var counts = new ConcurrentDictionary<string, long>();
var errors = new ConcurrentQueue<string>();
var samples = new List<MemorySample>();
var sw = Stopwatch.StartNew();
var deadline = TimeSpan.FromSeconds(seconds);
var caPath = Path.Combine(work, "ca", "ca.pem");

var sampler = Task.Run(async () =>
{
    while (sw.Elapsed < deadline)
    {
        samples.Add(Sample());
        await Task.Delay(sampleEvery);
    }
});

var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
{
    using var client = ProxyClients.Create(proxyUrl, caPath);
    client.Timeout = TimeSpan.FromSeconds(60);
    var random = new Random(w);
    long n = 0;
    while (sw.Elapsed < deadline)
    {
        n++;
        var kind = random.Next(12);
        var https = random.Next(4) != 0;
        var baseUrl = https ? $"https://localhost:{httpsPort}" : $"http://127.0.0.1:{httpPort}";
        try
        {
            switch (kind)
            {
                case < 4:
                    await Expect(client, "allowed", HttpMethod.Get, $"{baseUrl}/echo/allowed/{n}", 200);
                    break;
                case < 6:
                    await Expect(client, "denied-rule", HttpMethod.Get, $"{baseUrl}/denied/{n}", 403);
                    break;
                case < 8:
                    await Expect(client, "substituted", HttpMethod.Get, $"{baseUrl}/echo/substituted", 200,
                        headers: r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", placeholder),
                        check: body => body.Contains(placeholder, StringComparison.Ordinal) && !body.Contains(SecretValue, StringComparison.Ordinal));
                    break;
                case 8:
                    await Expect(client, "scanned-clean", HttpMethod.Post, $"{baseUrl}/echo/scan", 200, body: "{\"note\":\"nothing secret here " + n + "\"}");
                    break;
                case 9:
                    await Expect(client, "scanned-denied", HttpMethod.Post, $"{baseUrl}/echo/scan", 403,
                        body: "{\"token\":\"ghp_" + "0123456789abcdefghijklmnopqrstuvwxyz" + "\"}");
                    break;
                default:
                    // Client disconnect: ask for a slow answer and give up early.
                    using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50 + random.Next(200))))
                    {
                        try
                        {
                            using var response = await client.GetAsync($"{baseUrl}/slow/{n}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
                            await response.Content.CopyToAsync(Stream.Null, cts.Token);
                            counts.AddOrUpdate("disconnect-completed", 1, (_, v) => v + 1);
                        }
                        catch (OperationCanceledException)
                        {
                            counts.AddOrUpdate("disconnect", 1, (_, v) => v + 1);
                        }
                    }

                    break;
            }
        }
        catch (Exception ex)
        {
            errors.Enqueue($"{kind}: {ex.GetType().Name}: {ex.Message}");
        }
    }
})).ToList();

await Task.WhenAll(workers);
await sampler;
samples.Add(Sample());
var elapsed = sw.Elapsed;

// Every request has its event (disconnects included): poll until the store catches up.
// A client that disconnects during the CONNECT or TLS handshake never sent a request, so disconnects have at most one
// event each; every other request has exactly one.
var sent = counts.Values.Sum();
var disconnects = counts.GetValueOrDefault("disconnect") + counts.GetValueOrDefault("disconnect-completed");
var completed = sent - disconnects;
long stored = 0, storedSlow = 0;
for (var i = 0; i < 120; i++)
{
    (stored, storedSlow) = await EventCountAsync();
    if (stored >= completed)
    {
        break;
    }

    await Task.Delay(500);
}

var exitedEarly = proxy.HasExited;
if (!exitedEarly)
{
    _ = Kill(proxy.Id, 15);
    await proxy.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
}

if (counters is not null)
{
    // dotnet-counters ends by itself when its target exits.
    try
    {
        await counters.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15));
    }
    catch (TimeoutException)
    {
        counters.Kill();
    }

    // dotnet-counters writes its CSV when it ends; join it to the samples by wall-clock time.
    var gc = ReadCounters(countersCsv);
    for (var i = 0; i < samples.Count; i++)
    {
        var (heap, committed) = GcAt(gc, samples[i].Wall);
        samples[i] = samples[i] with { GcHeapMiB = heap / 1048576.0, GcCommittedMiB = committed / 1048576.0 };
    }
}

await origin.StopAsync();
var report = new StringBuilder();
report.AppendLine(CultureInfo.InvariantCulture, $"### Soak: {elapsed.TotalSeconds:F0} s, {concurrency} workers, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
report.AppendLine();
report.AppendLine("| outcome | requests |");
report.AppendLine("| --- | ---: |");
foreach (var (k, v) in counts.OrderBy(p => p.Key, StringComparer.Ordinal))
{
    report.AppendLine(CultureInfo.InvariantCulture, $"| {k} | {v} |");
}

report.AppendLine(CultureInfo.InvariantCulture, $"| **total** | **{sent}** ({sent / elapsed.TotalSeconds:F1}/s) |");
report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"- unexpected results (errors): **{errors.Count}**");
report.AppendLine(CultureInfo.InvariantCulture, $"- events stored for the {completed} completed requests: **{stored}** ({(stored == completed ? "every request has exactly one event" : "MISMATCH " + (stored - completed))})");
report.AppendLine(CultureInfo.InvariantCulture, $"- events stored for the {disconnects} client disconnects: {storedSlow} (the rest gave up before sending a request, during CONNECT/TLS)");
report.AppendLine(CultureInfo.InvariantCulture, $"- proxy exit: {(exitedEarly ? "DIED DURING THE SOAK" : "SIGTERM -> exit code " + proxy.ExitCode)}");
report.AppendLine();
report.AppendLine(counters is null
    ? "Managed heap not sampled (dotnet-counters not found: `dotnet tool install -g dotnet-counters`, or set DOTNET_COUNTERS)."
    : "RSS = anonymous + file-backed/shared pages. GC heap: live managed objects after the last GC; GC committed: memory the GC holds; native = anonymous - GC committed (malloc arenas of SQLite/OpenSSL, runtime, thread stacks).");
report.AppendLine();
report.AppendLine("| t (s) | RSS (MiB) | anonymous | file+shared | GC heap | GC committed | native | threads | open fds | events.db+wal (MiB) |");
report.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var s in samples)
{
    report.AppendLine(s.Row());
}

report.AppendLine();
report.Append(MemorySummary(samples, warmup));

foreach (var e in errors.Take(20))
{
    report.AppendLine(CultureInfo.InvariantCulture, $"- error: {e}");
}

Console.WriteLine(report.ToString());
var failed = !errors.IsEmpty || stored != completed || storedSlow > disconnects || exitedEarly || proxy.ExitCode != 0;
if (failed)
{
    Console.Error.WriteLine(string.Join('\n', proxyOutput.TakeLast(40)));
}

try
{
    Directory.Delete(work, recursive: true);
}
catch (IOException)
{
}

return failed ? 1 : 0;

async Task Expect(HttpClient client, string name, HttpMethod method, string url, int status, string? body = null,
    Action<HttpRequestMessage>? headers = null, Func<string, bool>? check = null)
{
    using var request = new HttpRequestMessage(method, url);
    if (body is not null)
    {
        request.Content = new StringContent(body, Encoding.UTF8, "application/json");
    }

    headers?.Invoke(request);
    using var response = await client.SendAsync(request);
    var text = await response.Content.ReadAsStringAsync();
    counts.AddOrUpdate(name, 1, (_, v) => v + 1);
    if ((int)response.StatusCode != status || (check is not null && !check(text)))
    {
        errors.Enqueue($"{name} {url}: {(int)response.StatusCode} {response.Headers.GetValues("X-ProxyGuard-Reason").FirstOrDefault() ?? string.Empty} {text[..Math.Min(200, text.Length)]}"
            .Replace(SecretValue, "[secret]", StringComparison.Ordinal));
    }
}

MemorySample Sample()
{
    var t = sw.Elapsed.TotalSeconds;
    try
    {
        var status = ProcFields($"/proc/{proxy.Id}/status");
        var rollup = ProcFields($"/proc/{proxy.Id}/smaps_rollup");
        var fds = Directory.EnumerateFileSystemEntries($"/proc/{proxy.Id}/fd").Count();
        long dbBytes = 0;
        foreach (var name in new[] { "events.db", "events.db-wal" })
        {
            var file = new FileInfo(Path.Combine(work, "data", name));
            dbBytes += file.Exists ? file.Length : 0;
        }

        return new MemorySample(t, DateTime.Now, status.GetValueOrDefault("VmRSS") / 1024.0, rollup.GetValueOrDefault("Anonymous") / 1024.0,
            null, null, status.GetValueOrDefault("Threads"), fds, dbBytes / 1048576.0);
    }
    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
    {
        return new MemorySample(t, DateTime.Now, null, null, null, null, 0, 0, 0);
    }
}

// "Name:   123 kB" lines of a /proc file, values as written (kB for sizes).
static Dictionary<string, long> ProcFields(string path)
{
    var fields = new Dictionary<string, long>(StringComparer.Ordinal);
    foreach (var line in File.ReadLines(path))
    {
        var colon = line.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && long.TryParse(line[(colon + 1)..].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            fields[line[..colon]] = value;
        }
    }

    return fields;
}

// dotnet-counters' CSV (Timestamp,Provider,Counter Name,Counter Type,Mean/Increment; local time, whole seconds).
static List<(DateTime Time, string Name, double Value)> ReadCounters(string csv)
{
    var rows = new List<(DateTime, string, double)>();
    if (!File.Exists(csv))
    {
        return rows;
    }

    foreach (var line in File.ReadLines(csv).Skip(1))
    {
        var parts = line.Split(',');
        if (parts.Length == 5
            && DateTime.TryParseExact(parts[0], "MM/dd/yyyy HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AssumeLocal, out var time)
            && double.TryParse(parts[4], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            rows.Add((time, parts[2], value));
        }
    }

    return rows;
}

// The GC heap (sum of the generations after the last GC) and GC committed bytes last reported at or before a
// sample; null before the first report (or before the first GC, when the runtime reports 0).
static (double? Heap, double? Committed) GcAt(List<(DateTime Time, string Name, double Value)> rows, DateTime at)
{
    var last = new Dictionary<string, double>(StringComparer.Ordinal);
    foreach (var (time, name, value) in rows)
    {
        if (time <= at.AddSeconds(1))
        {
            last[name] = value;
        }
    }

    var heap = last.Where(p => p.Key.StartsWith("dotnet.gc.last_collection.heap.size", StringComparison.Ordinal)).Sum(p => p.Value);
    var committed = last.Where(p => p.Key.StartsWith("dotnet.gc.last_collection.memory.committed_size", StringComparison.Ordinal)).Sum(p => p.Value);
    return (heap > 0 ? heap : null, committed > 0 ? committed : null);
}

static Process? StartCounters(int pid, string csv, TimeSpan interval)
{
    var tool = Environment.GetEnvironmentVariable("DOTNET_COUNTERS");
    if (string.IsNullOrEmpty(tool))
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        tool = new[] { Path.Combine(home, ".dotnet", "tools", "dotnet-counters") }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, "dotnet-counters")))
            .FirstOrDefault(File.Exists);
    }

    if (tool is null || !File.Exists(tool))
    {
        return null;
    }

    var start = new ProcessStartInfo(tool) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in new[]
             {
                 "collect", "--process-id", pid.ToString(CultureInfo.InvariantCulture), "--refresh-interval",
                 Math.Max(1, (int)interval.TotalSeconds).ToString(CultureInfo.InvariantCulture), "--format", "csv", "--output", csv,
                 "--counters", "System.Runtime[dotnet.gc.last_collection.heap.size,dotnet.gc.last_collection.memory.committed_size]",
             })
    {
        start.ArgumentList.Add(a);
    }

    var process = Process.Start(start)!;
    process.OutputDataReceived += (_, _) => { };
    process.ErrorDataReceived += (_, _) => { };
    process.BeginOutputReadLine();
    process.BeginErrorReadLine();
    return process;
}

// After the warm-up: first and last value, range, and the least-squares slope (MiB/min) over the whole
// post-warm-up window and over its second half, for RSS, the GC heap, GC committed and native memory.
static string MemorySummary(List<MemorySample> all, TimeSpan warmup)
{
    var after = all.Where(s => s.T >= warmup.TotalSeconds && s.RssMiB is not null).ToList();
    var text = new StringBuilder();
    if (after.Count < 4)
    {
        text.AppendLine(CultureInfo.InvariantCulture, $"- memory after the {warmup.TotalSeconds:F0} s warm-up: too few samples to judge");
        return text.ToString();
    }

    text.AppendLine(CultureInfo.InvariantCulture, $"Memory after the {warmup.TotalSeconds:F0} s warm-up ({after[0].T:F0}-{after[^1].T:F0} s, {after.Count} samples):");
    text.AppendLine();
    text.AppendLine("| series | first | last | min | max | change | slope, whole window (MiB/min) | slope, second half (MiB/min) |");
    text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    void Line(string name, Func<MemorySample, double?> pick)
    {
        var points = after.Where(s => pick(s) is not null).Select(s => (s.T, V: pick(s)!.Value)).ToList();
        if (points.Count < 4)
        {
            return;
        }

        var half = points.Where(p => p.T >= (points[0].T + points[^1].T) / 2).ToList();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"| {name} | {points[0].V:F1} | {points[^1].V:F1} | {points.Min(p => p.V):F1} | {points.Max(p => p.V):F1} | {points[^1].V - points[0].V:+0.0;-0.0;0.0} | {Slope(points):+0.00;-0.00;0.00} | {Slope(half):+0.00;-0.00;0.00} |");
    }

    Line("RSS (MiB)", s => s.RssMiB);
    Line("anonymous (MiB)", s => s.AnonMiB);
    Line("GC heap (MiB)", s => s.GcHeapMiB);
    Line("GC committed (MiB)", s => s.GcCommittedMiB);
    Line("native (MiB)", s => s.NativeMiB);
    Line("threads", s => s.Threads);
    Line("open fds", s => s.Fds);
    return text.ToString();
}

static double Slope(List<(double T, double V)> points)
{
    if (points.Count < 2)
    {
        return 0;
    }

    var mt = points.Average(p => p.T);
    var mv = points.Average(p => p.V);
    var den = points.Sum(p => (p.T - mt) * (p.T - mt));
    return den == 0 ? 0 : points.Sum(p => (p.T - mt) * (p.V - mv)) / den * 60;
}

async Task<(long Other, long Slow)> EventCountAsync()
{
    using var admin = new HttpClient { BaseAddress = new Uri(adminUrl + "/") };
    admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    long total = 0, slow = 0, after = 0;
    while (true)
    {
        using var doc = JsonDocument.Parse(await admin.GetStringAsync($"api/events?after={after}&limit=1000"));
        var page = doc.RootElement.GetProperty("events");
        foreach (var e in page.EnumerateArray())
        {
            if (e.GetProperty("kind").GetString() != "request")
            {
                continue;
            }

            if (e.GetProperty("path").GetString()?.StartsWith("/slow/", StringComparison.Ordinal) == true)
            {
                slow++;
            }
            else
            {
                total++;
            }
        }

        var next = doc.RootElement.GetProperty("next").GetInt64();
        if (page.GetArrayLength() == 0 || next == after)
        {
            return (total, slow);
        }

        after = next;
    }
}

async Task<string> PlaceholderAsync()
{
    var env = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, WorkingDirectory = work };
    foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "proxyguard.dll"), "env", "--policy", policyPath, "--proxy", proxyUrl, "--format", "dotenv", "--ca-dir", Path.Combine(work, "ca"), "--data-dir", Path.Combine(work, "data") })
    {
        env.ArgumentList.Add(a);
    }

    using var p = Process.Start(env)!;
    var output = await p.StandardOutput.ReadToEndAsync();
    await p.WaitForExitAsync();
    return output.Split('\n').First(l => l.StartsWith("SOAK_TOKEN=", StringComparison.Ordinal))["SOAK_TOKEN=".Length..].Trim();
}

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static async Task<WebApplication> StartOriginAsync(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.ConfigureKestrel(k =>
    {
        k.Listen(IPAddress.Loopback, 0, o =>
        {
            o.Protocols = HttpProtocols.Http1AndHttp2;
            o.UseHttps(certificate);
        });
        k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http1);
    });
    var app = builder.Build();
    app.Map("/echo/{**rest}", async (HttpContext context) =>
    {
        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync();
        await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path} auth={context.Request.Headers.Authorization} body={body.Length}");
    });
    app.Map("/slow/{**rest}", async (HttpContext context) =>
    {
        await context.Response.WriteAsync("slow start\n", context.RequestAborted);
        await Task.Delay(2000, context.RequestAborted);
        await context.Response.WriteAsync("slow end\n", context.RequestAborted);
    });
    await app.StartAsync();
    return app;
}

[System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
static extern int Kill(int pid, int signal);

/// <summary>One sample of the proxy process; sizes in MiB, null when not available.</summary>
internal sealed record MemorySample(double T, DateTime Wall, double? RssMiB, double? AnonMiB, double? GcHeapMiB, double? GcCommittedMiB, long Threads, long Fds, double DbMiB)
{
    public double? NativeMiB => AnonMiB - GcCommittedMiB;

    public string Row()
    {
        static string F(double? v) => v is double d ? d.ToString("F1", CultureInfo.InvariantCulture) : "-";
        return RssMiB is null
            ? string.Create(CultureInfo.InvariantCulture, $"| {T:F0} | (process gone) | | | | | | | | |")
            : string.Create(CultureInfo.InvariantCulture,
                $"| {T:F0} | {F(RssMiB)} | {F(AnonMiB)} | {F(RssMiB - AnonMiB)} | {F(GcHeapMiB)} | {F(GcCommittedMiB)} | {F(NativeMiB)} | {Threads} | {Fds} | {DbMiB:F1} |");
    }
}
