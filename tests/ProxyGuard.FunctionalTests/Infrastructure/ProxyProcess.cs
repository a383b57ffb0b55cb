using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;

namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>A real <c>proxyguard run</c> process on free loopback ports, with its own CA and data directories.</summary>
public sealed class ProxyProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;

    private ProxyProcess(Process process, ConcurrentQueue<string> output, string directory, string policyPath)
    {
        _process = process;
        _output = output;
        Directory = directory;
        PolicyPath = policyPath;
    }

    public string Directory { get; }

    public string PolicyPath { get; }

    public string CaDirectory => Path.Combine(Directory, "ca");

    public string DataDirectory => Path.Combine(Directory, "data");

    public string CaPath => Path.Combine(CaDirectory, "ca.pem");

    public string ProxyUrl { get; private set; } = string.Empty;

    public string AdminUrl { get; private set; } = string.Empty;

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the process printed so far (stdout and stderr).</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>
    /// The proxyguard.dll every test starts (proxy and CLI): the one built next to the tests, or the one named by
    /// <c>PG_PROXY_DLL</c> (to run the suite against another build, e.g. an older commit).
    /// </summary>
    public static string DllPath { get; } = Environment.GetEnvironmentVariable("PG_PROXY_DLL") is { Length: > 0 } dll
        ? Path.GetFullPath(dll)
        : Path.Combine(AppContext.BaseDirectory, "proxyguard.dll");

    /// <summary>Writes the policy and starts the proxy; returns once both listeners are up.</summary>
    public static async Task<ProxyProcess> StartAsync(
        string directory, string policyYaml, IEnumerable<string>? extraArgs = null, IDictionary<string, string>? environment = null, string listen = "127.0.0.1:0")
    {
        System.IO.Directory.CreateDirectory(directory);
        var policyPath = Path.Combine(directory, "policy.yaml");
        await File.WriteAllTextAsync(policyPath, policyYaml);
        return await StartWithPolicyFileAsync(directory, policyPath, extraArgs, environment, listen);
    }

    public static async Task<ProxyProcess> StartWithPolicyFileAsync(
        string directory, string policyPath, IEnumerable<string>? extraArgs = null, IDictionary<string, string>? environment = null, string listen = "127.0.0.1:0")
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = directory,
        };
        foreach (var arg in new[]
                 {
                     DllPath, "run", "--policy", policyPath, "--listen", listen, "--admin", "127.0.0.1:0",
                     "--ca-dir", Path.Combine(directory, "ca"), "--data-dir", Path.Combine(directory, "data"),
                 }.Concat(extraArgs ?? []))
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["PROXYGUARD_ADMIN_TOKEN"] = AdminToken;
        psi.Environment["PROXYGUARD_LOG_LEVEL"] = Environment.GetEnvironmentVariable("PG_TEST_LOG_LEVEL") ?? "Information";
        psi.Environment.Remove("HTTP_PROXY");
        psi.Environment.Remove("HTTPS_PROXY");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        var output = new ConcurrentQueue<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var proxy = new ProxyProcess(process, output, directory, policyPath);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            output.Enqueue(e.Data);
            if (e.Data.StartsWith("proxyguard: proxy listening on ", StringComparison.Ordinal))
            {
                proxy.ProxyUrl = e.Data["proxyguard: proxy listening on ".Length..];
            }
            else if (e.Data.StartsWith("proxyguard: admin listening on ", StringComparison.Ordinal))
            {
                proxy.AdminUrl = e.Data["proxyguard: admin listening on ".Length..];
            }
            else if (e.Data.StartsWith("proxyguard: for a sandbox", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output.Enqueue(e.Data);
            }
        };
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("proxyguard exited early:\n" + string.Join('\n', output)));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var finished = await Task.WhenAny(ready.Task, Task.Delay(TimeSpan.FromSeconds(60)));
        if (finished != ready.Task)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("proxyguard did not start in 60 s:\n" + string.Join('\n', output));
        }

        await ready.Task;
        return proxy;
    }

    public const string AdminToken = "test-admin-token-0123456789abcdef";

    /// <summary>Runs <c>proxyguard env --format dotenv</c> for this proxy and returns the variables.</summary>
    public async Task<Dictionary<string, string>> EnvAsync()
    {
        var result = await Cli.RunAsync(Directory, "env", "--policy", PolicyPath, "--proxy", ProxyUrl, "--format", "dotenv",
            "--ca-dir", CaDirectory, "--data-dir", DataDirectory);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2))
            .ToDictionary(p => p[0], p => Unquote(p[1]));
    }

    /// <summary>Undoes the dotenv quoting of <c>proxyguard env</c> (single quotes, <c>'\''</c> for a quote).</summary>
    public static string Unquote(string value) =>
        value.Length >= 2 && value[0] == '\'' && value[^1] == '\''
            ? value[1..^1].Replace("'\\''", "'", StringComparison.Ordinal)
            : value;

    public HttpClient AdminClient()
    {
        var client = new HttpClient { BaseAddress = new Uri(AdminUrl + "/") };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    /// <summary>All events so far (pages through the admin API).</summary>
    public async Task<List<JsonElement>> EventsAsync(string filter = "")
    {
        using var client = AdminClient();
        var all = new List<JsonElement>();
        long after = 0;
        while (true)
        {
            var json = await client.GetStringAsync($"api/events?after={after}&limit=1000{filter}");
            using var doc = JsonDocument.Parse(json);
            var events = doc.RootElement.GetProperty("events");
            foreach (var e in events.EnumerateArray())
            {
                all.Add(e.Clone());
            }

            var next = doc.RootElement.GetProperty("next").GetInt64();
            if (events.GetArrayLength() == 0 || next == after)
            {
                return all;
            }

            after = next;
        }
    }

    /// <summary>Waits until an event matching <paramref name="predicate"/> is stored (events commit in batches).</summary>
    public async Task<JsonElement> WaitForEventAsync(Func<JsonElement, bool> predicate, int timeoutMs = 5000)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var match = (await EventsAsync()).LastOrDefault(predicate);
            if (match.ValueKind != JsonValueKind.Undefined)
            {
                return match;
            }

            if (sw.ElapsedMilliseconds > timeoutMs)
            {
                throw new TimeoutException("no matching event; output:\n" + Output);
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Peak resident memory (VmHWM) of the proxy process, in bytes.</summary>
    public long PeakRssBytes() => ReadStatusKb("VmHWM:") * 1024;

    public long RssBytes() => ReadStatusKb("VmRSS:") * 1024;

    private long ReadStatusKb(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    public void Signal(int signal) => _ = Cli.Kill(_process.Id, signal);

    public void KillHard() => _process.Kill();

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (Environment.GetEnvironmentVariable("PG_TEST_DUMP") is { Length: > 0 } dump)
        {
            await File.AppendAllTextAsync(dump, Output + "\n");
        }

        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
