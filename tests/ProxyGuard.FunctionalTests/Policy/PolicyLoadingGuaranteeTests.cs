using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Policy loading guarantees against a running proxy and the CLI (issue 20 class 3): a file being written is
/// never applied, deep nesting is a diagnostic (not a crash), and FIFOs referenced by the policy never wedge a reload.
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class PolicyLoadingGuaranteeTests
{
    private static readonly TimeSpan NoHang = TimeSpan.FromSeconds(8);

    private static string PolicyWithRules(int count)
    {
        var sb = new StringBuilder("version: 1\ndefault: deny\ncontent:\n  builtin: none\nrules:\n");
        for (var i = 1; i <= count; i++)
        {
            sb.Append(CultureInfoInvariant($"  - name: rule-{i}\n    hosts: [host{i}.example.com]\n    action: allow\n"));
        }

        return sb.ToString();
    }

    private static string CultureInfoInvariant(FormattableString s) => FormattableString.Invariant(s);

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static async Task<string> CurrentShaAsync(HttpClient admin)
    {
        using var doc = JsonDocument.Parse(await admin.GetStringAsync("api/policy"));
        return doc.RootElement.GetProperty("sha256").GetString()!;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> describe)
    {
        var sw = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(sw.Elapsed < timeout, "timed out waiting:\n" + describe());
            await Task.Delay(25);
        }
    }

    [Fact]
    public async Task A_valid_prefix_written_with_a_pause_longer_than_the_debounce_is_never_applied()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(
            dir.File("proxy"), PolicyWithRules(1), environment: new Dictionary<string, string> { ["PROXYGUARD_POLICY_SETTLE_MS"] = "1500" });
        using var admin = proxy.AdminClient();

        var full = Encoding.UTF8.GetBytes(PolicyWithRules(3));
        var prefix = Encoding.UTF8.GetBytes(PolicyWithRules(2));
        Assert.Equal(prefix, full[..prefix.Length]);
        Assert.True(ProxyGuard.Policy.PolicyLoader.LoadText(Encoding.UTF8.GetString(prefix), "prefix.yaml").Success, "the prefix must be a valid policy on its own");

        // Watch what the proxy applies, every few milliseconds, while the file is written in two parts.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var stop = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                seen.Add(await CurrentShaAsync(admin));
                await Task.Delay(10);
            }
        });

        await using (var file = new FileStream(proxy.PolicyPath, FileMode.Create, FileAccess.Write, FileShare.ReadWrite))
        {
            await file.WriteAsync(prefix);
            await file.FlushAsync();
            await Task.Delay(700); // longer than the watcher's 200 ms debounce, shorter than the settle interval
            await file.WriteAsync(full.AsMemory(prefix.Length));
        }

        await WaitForAsync(async () => await CurrentShaAsync(admin) == Sha(full), TimeSpan.FromSeconds(15), () => proxy.Output);
        await Task.Delay(300);
        await stop.CancelAsync();
        await watcher;

        Assert.DoesNotContain(Sha(prefix), seen);
        Assert.DoesNotContain(Sha(prefix), proxy.Output, StringComparison.Ordinal);
        Assert.Contains(Sha(full), proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_renamed_onto_the_policy_applies_without_waiting_for_the_settle_interval()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(
            dir.File("proxy"), PolicyWithRules(1), environment: new Dictionary<string, string> { ["PROXYGUARD_POLICY_SETTLE_MS"] = "5000" });
        using var admin = proxy.AdminClient();
        var next = Encoding.UTF8.GetBytes(PolicyWithRules(2));
        var temp = Path.Combine(Path.GetDirectoryName(proxy.PolicyPath)!, ".policy.yaml.tmp");
        await File.WriteAllBytesAsync(temp, next);
        var sw = Stopwatch.StartNew();
        File.Move(temp, proxy.PolicyPath, overwrite: true);
        await WaitForAsync(async () => await CurrentShaAsync(admin) == Sha(next), TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), $"the renamed file applied after {sw.ElapsedMilliseconds} ms (settle interval 5000 ms)");
    }

    [Fact]
    public async Task Deep_nesting_on_automatic_reload_is_rejected_and_the_proxy_keeps_running()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), PolicyWithRules(1));
        using var admin = proxy.AdminClient();
        var good = await CurrentShaAsync(admin);

        await File.WriteAllTextAsync(proxy.PolicyPath, "version: 1\nrules: " + new string('[', 100_000) + "\n");
        await WaitForAsync(() => Task.FromResult(proxy.Output.Contains("nested more than 64 deep", StringComparison.Ordinal) || proxy.HasExited), TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.False(proxy.HasExited, proxy.Output);
        Assert.Equal(good, await CurrentShaAsync(admin));
        Assert.Contains("policy.yaml:2:", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_check_reports_deep_nesting_as_a_diagnostic()
    {
        using var dir = new TempDir();
        var flow = dir.Write("flow.yaml", "version: 1\nrules: " + new string('[', 100_000) + "\n");
        var mixed = dir.Write("mixed.yaml", "version: 1\nrules: " + string.Concat(Enumerable.Repeat("[{a: ", 40_000)) + "\n");
        foreach (var file in new[] { flow, mixed })
        {
            var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "check", file], dir.Path, null, TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 1, result.All);
            Assert.Contains(file + ":2:", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("nested more than 64 deep", result.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Policy_check_resolving_a_fifo_secret_fails_at_once()
    {
        using var dir = new TempDir();
        var fifo = MakeFifo(dir, "token");
        var link = dir.File("token-link");
        File.CreateSymbolicLink(link, fifo);
        var policy = dir.Write("p.yaml", $"version: 1\nclients:\n  - {{id: a, token: 'file:{fifo}'}}\n  - {{id: b, token: 'file:{link}'}}\n  - {{id: c, token: 'file:/dev/zero'}}\n");
        var sw = Stopwatch.StartNew();
        var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "check", "--resolve-secrets", policy], dir.Path, null, TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 1, result.All);
        Assert.Equal(2, CountOf(result.Stderr, "FIFO (named pipe), not a regular file"));
        Assert.Contains(policy + ":3:", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(policy + ":5:", result.Stderr, StringComparison.Ordinal); // /dev/zero: refused (mode or type), never read
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), sw.Elapsed.ToString());
    }

    [Fact]
    public async Task Reload_with_a_fifo_secret_or_ca_file_never_hangs_and_keeps_serving()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), PolicyWithRules(1));
        using var admin = proxy.AdminClient();
        admin.Timeout = NoHang;
        var good = await CurrentShaAsync(admin);
        var fifo = MakeFifo(dir, "secret");

        // A file: secret on a FIFO: the policy applies, the secret is unavailable (its placeholder fails closed).
        await File.WriteAllTextAsync(proxy.PolicyPath, PolicyWithRules(1) + $"secrets:\n  - {{name: api, value: 'file:{fifo}', hosts: [host1.example.com]}}\n");
        var sw = Stopwatch.StartNew();
        using (var response = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.True(sw.Elapsed < NoHang, sw.Elapsed.ToString());
        await WaitForAsync(() => Task.FromResult(proxy.Output.Contains("FIFO (named pipe)", StringComparison.Ordinal)), TimeSpan.FromSeconds(5), () => proxy.Output);

        // A CA file on a FIFO: the reload is refused and the last good policy stays.
        var applied = await CurrentShaAsync(admin);
        Assert.NotEqual(good, applied);
        await File.WriteAllTextAsync(proxy.PolicyPath, PolicyWithRules(2) + $"tls:\n  upstream_ca_files: ['{fifo}']\n");
        sw.Restart();
        using (var response = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Contains("FIFO", body, StringComparison.Ordinal);

            // FILE:LINE:COL of the list entry: 11 lines of rules, then "tls:", then the entry at column 23.
            Assert.Contains($"{proxy.PolicyPath}:13:23: tls.upstream_ca_files[0]:", body, StringComparison.Ordinal);
        }

        Assert.True(sw.Elapsed < NoHang, sw.Elapsed.ToString());
        Assert.Equal(applied, await CurrentShaAsync(admin));
        Assert.False(proxy.HasExited);
    }

    private static int CountOf(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private static string MakeFifo(TempDir dir, string name)
    {
        var path = dir.File(name);
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", ["-m", "600", path]) { UseShellExecute = false })!;
        Assert.True(mkfifo.WaitForExit(5000));
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }
}
