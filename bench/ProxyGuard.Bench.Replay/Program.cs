using System.Diagnostics;
using System.Globalization;
using ProxyGuard.Audit;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Lifecycle;

// Replay speed: writes a store of N recorded events (default 100 000: agents calling model, package and
// source-control APIs, 10% audit-deny), then replays them against a narrowed candidate policy
//   1. in process: the library the CLI uses (read the store page by page, decide each event, group);
//   2. end to end: `dotnet proxyguard.dll policy replay CANDIDATE --events DIR --format json` (with --proxyguard DLL).
//
//   dotnet run -c Release --project bench/ProxyGuard.Bench.Replay -- [--events 100000] [--dir DIR]
//       [--proxyguard src/ProxyGuard/bin/Release/net10.0/proxyguard.dll]
var inv = CultureInfo.InvariantCulture;

// A candidate that keeps most of the traffic but narrows GitHub to reads and drops the Go proxy.
const string Candidate = """
    version: 1
    default: deny
    rules:
      - name: llm
        hosts: [api.anthropic.com]
        methods: [POST]
        paths: ["/v1/messages"]
        action: allow
      - name: packages
        hosts: [registry.npmjs.org, pypi.org, files.pythonhosted.org]
        methods: [GET, HEAD]
        action: allow
      - name: github-read
        hosts: [github.com, api.github.com]
        methods: [GET]
        action: allow
    """;
var count = 100_000;
string? directory = null;
string? dll = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--events":
            count = int.Parse(args[++i], inv);
            break;
        case "--dir":
            directory = args[++i];
            break;
        case "--proxyguard":
            dll = Path.GetFullPath(args[++i]);
            break;
        default:
            Console.Error.WriteLine("usage: [--events N] [--dir DIR] [--proxyguard DLL]");
            return 2;
    }
}

var owns = directory is null;
directory ??= Path.Combine(Path.GetTempPath(), "pg-bench-replay-" + Guid.NewGuid().ToString("N"));
try
{
    var write = Stopwatch.StartNew();
    await using (var store = EventStore.Open(directory, new EventStoreOptions { RetainFor = null, MaxEvents = null }))
    {
        var random = new Random(42);
        var start = DateTimeOffset.UtcNow.AddHours(-1);
        for (var n = 0; n < count; n++)
        {
            await store.WriteAsync(Sample(random, start.AddMilliseconds(n * 10)), CancellationToken.None);
        }

        await store.FlushAsync();
    }

    write.Stop();
    var candidate = Path.Combine(directory, "candidate.yaml");
    await File.WriteAllTextAsync(candidate, Candidate);
    Console.WriteLine(string.Create(inv, $"store: {count:N0} events written in {write.Elapsed.TotalSeconds:F1} s ({directory})"));

    // 0. Reading alone (the store, page by page).
    var readCpu = Process.GetCurrentProcess().TotalProcessorTime;
    var read = Stopwatch.StartNew();
    using (var archive = EventArchive.Open(directory))
    {
        var n = archive.ReadAll().Count();
        read.Stop();
        Console.WriteLine(string.Create(inv, $"read only: {n:N0} events in {read.Elapsed.TotalMilliseconds:N0} ms ({(Process.GetCurrentProcess().TotalProcessorTime - readCpu).TotalMilliseconds:N0} ms CPU)"));
    }

    // 1. In process.
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    var loaded = PolicyLoader.LoadFile(candidate);
    if (!loaded.Success)
    {
        Console.Error.WriteLine(string.Join("\n", loaded.Diagnostics));
        return 1;
    }

    var replay = new PolicyReplay(loaded.Policy!);
    using (var archive = EventArchive.Open(directory))
    {
        foreach (var e in archive.ReadAll())
        {
            replay.Add(new ObservedRequest
            {
                Id = e.Id, Time = e.Time, Client = e.Client, Kind = e.Kind, Method = e.Method, Scheme = e.Scheme, Host = e.Host, Port = e.Port,
                Path = e.Path, Decision = e.Decision, Rule = e.Rule, Reason = e.Reason,
            });
        }
    }

    var report = replay.Report();
    clock.Stop();
    cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
    Console.WriteLine(string.Create(inv,
        $"in process: {report.Replayed + report.NotComparable:N0} events in {clock.Elapsed.TotalMilliseconds:N0} ms, {cpu.TotalMilliseconds:N0} ms CPU ({(report.Replayed + report.NotComparable) / clock.Elapsed.TotalSeconds:N0} events/s): {report.NewlyDenied:N0} newly denied, {report.NewlyAllowed:N0} newly allowed, {report.Unchanged:N0} unchanged, {report.Groups.Count} groups"));

    // 2. End to end, through the real binary.
    if (dll is not null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dll, "policy", "replay", candidate, "--events", directory, "--format", "json" })
        {
            psi.ArgumentList.Add(a);
        }

        var wall = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        wall.Stop();
        var json = await stdout;
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var denied = doc.RootElement.GetProperty("newlyDenied").GetInt64();
        var errors = await stderr;
        Console.WriteLine(string.Create(inv,
            $"proxyguard policy replay: {wall.Elapsed.TotalSeconds:F2} s wall (process start included), exit {process.ExitCode}, {denied:N0} newly denied{(process.ExitCode > 1 ? "; " + errors : string.Empty)}"));
    }

    return 0;
}
finally
{
    if (owns)
    {
        Directory.Delete(directory, recursive: true);
    }
}

static AuditEvent Sample(Random random, DateTimeOffset time)
{
    string[] hosts = ["api.anthropic.com", "registry.npmjs.org", "pypi.org", "files.pythonhosted.org", "github.com", "api.github.com", "proxy.golang.org"];
    string[] paths =
    [
        "/v1/messages", "/lodash", "/lodash/-/lodash-4.17.21.tgz", "/simple/requests/", "/packages/ab/cd/numpy-2.1.0-cp312-manylinux_x86_64.whl",
        "/acme/widgets.git/info/refs?service=", "/acme/widgets.git/git-upload-pack", "/repos/acme/widgets/pulls/1234", "/github.com/stretchr/testify/@v/list",
    ];
    var host = hosts[random.Next(hosts.Length)];
    var path = paths[random.Next(paths.Length)];
    var method = path.EndsWith("git-upload-pack", StringComparison.Ordinal) || path == "/v1/messages" ? "POST" : "GET";
    var auditDeny = random.Next(10) == 0;
    var connect = random.Next(25) == 0;
    return new AuditEvent
    {
        Time = time,
        Client = "agent-" + random.Next(4).ToString(CultureInfo.InvariantCulture),
        Kind = connect ? AuditKinds.Connect : AuditKinds.Request,
        Method = connect ? "CONNECT" : method,
        Scheme = "https",
        Host = host,
        Port = 443,
        Path = connect ? null : path,
        Decision = auditDeny ? AuditDecisions.AuditDeny : AuditDecisions.Allow,
        Rule = auditDeny ? "default" : "recorded",
        Reason = auditDeny ? "no-rule-matched" : "rule-allow",
        Status = 200,
    };
}
