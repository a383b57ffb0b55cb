using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;

namespace ProxyGuard.Bench.Names;

/// <summary>One proxyguard process (started with <c>dotnet proxyguard.dll run</c>, killed by its own id on dispose).</summary>
internal sealed class ProxyProcess : IAsyncDisposable
{
    public const string AdminToken = "bench-admin-token-0123456789abcdef";

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;

    private ProxyProcess(Process process, ConcurrentQueue<string> output, string proxyUrl, string adminUrl, string caPath)
    {
        _process = process;
        _output = output;
        ProxyUrl = new Uri(proxyUrl);
        AdminUrl = adminUrl;
        CaPath = caPath;
    }

    public Uri ProxyUrl { get; }

    public string AdminUrl { get; }

    public string CaPath { get; }

    public int Pid => _process.Id;

    public string Output => string.Join('\n', _output);

    public static async Task<ProxyProcess> StartAsync(string directory, string policy, IDictionary<string, string> environment)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "proxyguard.dll");
        Directory.CreateDirectory(directory);
        var policyPath = Path.Combine(directory, "policy.yaml");
        await File.WriteAllTextAsync(policyPath, policy);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
        foreach (var arg in new[] { dll, "run", "--policy", policyPath, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ca-dir", Path.Combine(directory, "ca"), "--data-dir", Path.Combine(directory, "data") })
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["PROXYGUARD_ADMIN_TOKEN"] = AdminToken;
        psi.Environment["PROXYGUARD_LOG_LEVEL"] = "Warning";
        psi.Environment["PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT"] = "20000";
        psi.Environment.Remove("HTTP_PROXY");
        psi.Environment.Remove("HTTPS_PROXY");
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }

        var process = new Process { StartInfo = psi };
        var ready = new TaskCompletionSource<(string, string)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new ConcurrentQueue<string>();
        string? url = null;
        string? admin = null;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("proxyguard exited:\n" + string.Join('\n', output)));
                return;
            }

            output.Enqueue(e.Data);
            if (e.Data.StartsWith("proxyguard: proxy listening on ", StringComparison.Ordinal))
            {
                url = e.Data["proxyguard: proxy listening on ".Length..];
            }
            else if (e.Data.StartsWith("proxyguard: admin listening on ", StringComparison.Ordinal))
            {
                admin = e.Data["proxyguard: admin listening on ".Length..];
            }
            else if (e.Data.StartsWith("proxyguard: for a sandbox", StringComparison.Ordinal) && url is not null && admin is not null)
            {
                ready.TrySetResult((url, admin));
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output.Enqueue(e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var (proxyUrl, adminUrl) = await ready.Task.WaitAsync(TimeSpan.FromSeconds(120));
            return new ProxyProcess(process, output, proxyUrl, adminUrl, Path.Combine(directory, "ca", "ca.pem"));
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    /// <summary>User + system CPU time of the proxy process.</summary>
    public TimeSpan CpuTime()
    {
        _process.Refresh();
        return _process.TotalProcessorTime;
    }

    /// <summary>A field of /proc/PID/status in KiB (VmRSS, VmHWM).</summary>
    public long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return -1;
    }

    /// <summary>One unlabelled value from the admin /metrics page (NaN when absent).</summary>
    public async Task<double> MetricAsync(string name)
    {
        using var client = new HttpClient();
        var text = await client.GetStringAsync(AdminUrl + "/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return double.NaN;
    }

    /// <summary>POST /api/policy/reload; returns the status code and body.</summary>
    public async Task<(int Status, string Body)> ReloadAsync()
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        using var response = await client.PostAsync(AdminUrl + "/api/policy/reload", null);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
