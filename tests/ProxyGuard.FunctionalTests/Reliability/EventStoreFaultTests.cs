using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>
/// The event store's disk fails while the proxy serves: the file system under the data directory fills up (a real
/// ENOSPC on a small tmpfs) or its database files become unwritable (<c>chattr +i</c>, EPERM on every write, also
/// through descriptors SQLite already holds). Each test ends in a defined client-visible result: requests fail
/// closed with <c>503 audit-unavailable</c> and never reach the origin, <c>/healthz</c> answers 503, the process
/// stays up, and once the fault is removed the proxy recovers by itself and the events it held are committed.
/// </summary>
[Collection("proxy")]
public sealed class EventStoreFaultTests : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    private readonly TempDir _dir = new();
    private readonly TestPki _pki = new();
    private readonly ITestOutputHelper _log;
    private TestOrigin _origin = null!;

    public EventStoreFaultTests(ITestOutputHelper log)
    {
        _log = log;
    }

    public async Task InitializeAsync()
    {
        _origin = await TestOrigin.StartAsync(_pki.Issue(["localhost", "127.0.0.1"]));
    }

    public async Task DisposeAsync()
    {
        await _origin.DisposeAsync();
    }

    public void Dispose()
    {
        _pki.Dispose();
        _dir.Dispose();
    }

    [DiskFaultFact(DiskFault.Tmpfs)]
    public async Task A_full_disk_under_the_event_store_fails_requests_closed_and_the_proxy_recovers_when_space_returns()
    {
        var proxyDir = Path.Combine(_dir.Path, "proxy");
        var dataDir = Path.Combine(proxyDir, "data");
        Directory.CreateDirectory(dataDir);
        await DiskFaults.MountTmpfsAsync(dataDir, "8m");
        var filler = Path.Combine(dataDir, "filler");
        try
        {
            await using var proxy = await StartProxyAsync(proxyDir);
            await AssertServingAsync(proxy, "/disk-full/before");

            var error = DiskFaults.FillUntilFull(filler, maxBytes: 16L * 1024 * 1024);
            Assert.Contains("No space left on device", error, StringComparison.Ordinal);

            var forwarded = await AssertFailsClosedAsync(proxy, "disk-full");
            Assert.Contains("disk is full", proxy.Output, StringComparison.Ordinal);

            File.Delete(filler);
            await AssertRecoversAsync(proxy, "disk-full", forwarded);
        }
        finally
        {
            await DiskFaults.UnmountAsync(dataDir);
        }
    }

    [DiskFaultFact(DiskFault.Immutable)]
    public async Task Event_store_files_that_become_unwritable_fail_requests_closed_and_the_proxy_recovers_when_they_are_writable_again()
    {
        var proxyDir = Path.Combine(_dir.Path, "proxy");
        var dataDir = Path.Combine(proxyDir, "data");
        await using var proxy = await StartProxyAsync(proxyDir);
        await AssertServingAsync(proxy, "/read-only/before");

        // The database, its WAL and the directory (no file can be created or removed). Not the -shm file: SQLite
        // writes it through a shared mapping, and an immutable mapped page would be a SIGBUS, not an I/O error.
        var locked = new[] { "events.db", "events.db-wal" }.Select(f => Path.Combine(dataDir, f)).Where(File.Exists).Append(dataDir).ToArray();
        Assert.Contains(Path.Combine(dataDir, "events.db-wal"), locked);
        try
        {
            await DiskFaults.ChattrAsync("+i", locked);
            Assert.ThrowsAny<UnauthorizedAccessException>(() => File.WriteAllText(Path.Combine(dataDir, "probe"), "x"));

            var forwarded = await AssertFailsClosedAsync(proxy, "read-only");

            await DiskFaults.ChattrAsync("-i", locked);
            await AssertRecoversAsync(proxy, "read-only", forwarded);
        }
        finally
        {
            await DiskFaults.ChattrAsync("-i", locked, check: false);
        }
    }

    private async Task<ProxyProcess> StartProxyAsync(string proxyDir)
    {
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{_pki.WriteCaPem(_dir.Path)}]
            rules:
              - name: origin
                hosts: [localhost, 127.0.0.1]
                ports: [{_origin.HttpPort}, {_origin.HttpsPort}]
                paths: ["/disk-full/**", "/read-only/**"]
                action: allow
            """;
        return await ProxyProcess.StartAsync(proxyDir, policy);
    }

    /// <summary>An allowed request is forwarded and its event stored.</summary>
    private async Task AssertServingAsync(ProxyProcess proxy, string path)
    {
        var response = await SendAsync(proxy, $"http://127.0.0.1:{_origin.HttpPort}{path}");
        Assert.Equal((int)HttpStatusCode.OK, response.Status);
        Assert.Contains($"GET {path}", _origin.Received);
        await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == path && e.GetProperty("decision").GetString() == "allow");
        Assert.Equal(HttpStatusCode.OK, (await HealthAsync(proxy)).Status);
    }

    /// <summary>
    /// With the fault in place: the store notices at its next commit, so the request that makes it commit may still
    /// have been allowed (the store was healthy when it was decided; its event is held and must survive). From then
    /// on every request is refused with 503 audit-unavailable and nothing reaches the origin. Returns the paths that
    /// were forwarded before the store noticed.
    /// </summary>
    private async Task<List<string>> AssertFailsClosedAsync(ProxyProcess proxy, string prefix)
    {
        var forwarded = new List<string>();
        var sw = Stopwatch.StartNew();
        for (var i = 0; ; i++)
        {
            var path = $"/{prefix}/probe-{i}";
            var probe = await SendAsync(proxy, $"http://127.0.0.1:{_origin.HttpPort}{path}");
            if (probe.Status == (int)HttpStatusCode.OK)
            {
                forwarded.Add(path);
            }
            else
            {
                AssertAuditUnavailable(probe, path);
                break;
            }

            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15) && i < 50, $"still forwarding after {i + 1} requests, {sw.Elapsed}:\n{proxy.Output}");
            await Task.Delay(100);
        }

        _log.WriteLine($"{prefix}: first 503 after {forwarded.Count} forwarded request(s), {sw.ElapsedMilliseconds} ms after the fault");

        // The store noticed within a request or two (batches commit every 50 ms).
        Assert.True(forwarded.Count <= 5, $"{forwarded.Count} requests forwarded after the fault: {string.Join(", ", forwarded)}");

        var received = _origin.Received.Count;
        var refused = new List<string>();
        for (var round = 0; round < 2; round++)
        {
            // Plain HTTP, HTTPS inside an intercepted tunnel, and a request the policy denies anyway: all 503.
            foreach (var (url, path) in new[]
                     {
                         ($"http://127.0.0.1:{_origin.HttpPort}/{prefix}/refused-{round}", $"/{prefix}/refused-{round}"),
                         ($"https://localhost:{_origin.HttpsPort}/{prefix}/refused-tls-{round}", $"/{prefix}/refused-tls-{round}"),
                         ($"http://127.0.0.1:{_origin.HttpPort}/not-allowed-{round}", $"/not-allowed-{round}"),
                     })
            {
                AssertAuditUnavailable(await SendAsync(proxy, url), path);
                refused.Add(path);
            }

            var health = await HealthAsync(proxy);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, health.Status);
            Assert.Equal("audit-unavailable", health.Body.Trim());
            Assert.Contains("proxyguard_audit_store_healthy 0", await MetricsAsync(proxy), StringComparison.Ordinal);
            Assert.False(proxy.HasExited, "the proxy exited:\n" + proxy.Output);

            // Past the writer's longest retry back-off (2 s): it keeps failing closed, it does not give up or crash.
            if (round == 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(2.5));
            }
        }

        Assert.Equal(received, _origin.Received.Count);
        Assert.DoesNotContain(_origin.Received, r => refused.Any(p => r.EndsWith(" " + p, StringComparison.Ordinal)));
        Assert.Contains("audit store cannot record a deny event", proxy.Output, StringComparison.Ordinal);
        return forwarded;
    }

    /// <summary>Fault removed: healthy again within the writer's back-off, requests forwarded and stored, and the events held during the fault committed.</summary>
    private async Task AssertRecoversAsync(ProxyProcess proxy, string prefix, List<string> forwardedDuringFault)
    {
        var sw = Stopwatch.StartNew();
        while ((await HealthAsync(proxy)).Status != HttpStatusCode.OK)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), "the proxy did not recover in 15 s:\n" + proxy.Output);
            Assert.False(proxy.HasExited, "the proxy exited:\n" + proxy.Output);
            await Task.Delay(100);
        }

        _log.WriteLine($"{prefix}: /healthz 200 again {sw.ElapsedMilliseconds} ms after the fault was removed");
        var path = $"/{prefix}/after";
        var response = await SendAsync(proxy, $"https://localhost:{_origin.HttpsPort}{path}");
        Assert.Equal((int)HttpStatusCode.OK, response.Status);
        Assert.Contains($"GET {path}", _origin.Received);
        Assert.Contains("proxyguard_audit_store_healthy 1", await MetricsAsync(proxy), StringComparison.Ordinal);
        await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == path && e.GetProperty("decision").GetString() == "allow");

        // Every request that was forwarded has its event: the batch held while the disk failed was committed.
        var stored = (await proxy.EventsAsync()).Select(e => e.GetProperty("path").GetString()).ToHashSet();
        foreach (var forwarded in forwardedDuringFault)
        {
            Assert.Contains(forwarded, stored);
        }

        Assert.False(proxy.HasExited, "the proxy exited:\n" + proxy.Output);
    }

    private static void AssertAuditUnavailable(Reply response, string path)
    {
        Assert.True(response.Status == (int)HttpStatusCode.ServiceUnavailable, $"{path}: {response.Status} {response.Reason}");
        Assert.Equal("deny", response.Decision);
        Assert.Equal("audit-unavailable", response.Reason);
        Assert.Contains("the audit store cannot record events", response.Body, StringComparison.Ordinal);
    }

    /// <summary>A GET through the proxy on a new connection (one CONNECT per HTTPS request), bounded by <see cref="RequestTimeout"/>.</summary>
    private static async Task<Reply> SendAsync(ProxyProcess proxy, string url)
    {
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        client.Timeout = RequestTimeout;
        return await Traffic.SendAsync(client, HttpMethod.Get, url);
    }

    private static async Task<(HttpStatusCode Status, string Body)> HealthAsync(ProxyProcess proxy)
    {
        using var client = new HttpClient { Timeout = RequestTimeout };
        using var response = await client.GetAsync(proxy.AdminUrl + "/healthz");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<string> MetricsAsync(ProxyProcess proxy)
    {
        using var client = new HttpClient { Timeout = RequestTimeout };
        return await client.GetStringAsync(proxy.AdminUrl + "/metrics");
    }
}

public enum DiskFault
{
    /// <summary>A small tmpfs can be mounted (root with CAP_SYS_ADMIN, mount allowed in this container).</summary>
    Tmpfs,

    /// <summary><c>chattr +i</c> works in the temp directory and stops writes through descriptors already open (ext4, xfs, btrfs; not tmpfs).</summary>
    Immutable,
}

/// <summary>A fact skipped, with the reason, when this machine cannot produce the disk fault (probed once).</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class DiskFaultFactAttribute : FactAttribute
{
    public DiskFaultFactAttribute(DiskFault fault)
    {
        if ((fault == DiskFault.Tmpfs ? DiskFaults.TmpfsUnavailable.Value : DiskFaults.ImmutableUnavailable.Value) is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>Makes and undoes disk faults with the system's own tools (mount, umount, chattr).</summary>
internal static class DiskFaults
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(20);

    public static readonly Lazy<string?> TmpfsUnavailable = new(ProbeTmpfs);

    public static readonly Lazy<string?> ImmutableUnavailable = new(ProbeImmutable);

    public static async Task MountTmpfsAsync(string directory, string size)
    {
        var result = await RunAsync("mount", "-t", "tmpfs", "-o", $"size={size},mode=0700", "proxyguard-test", directory);
        Assert.True(result.ExitCode == 0, "mount -t tmpfs failed: " + result.All);
    }

    public static async Task UnmountAsync(string directory)
    {
        var result = await RunAsync("umount", directory);
        if (result.ExitCode != 0)
        {
            // Something still holds it open: detach it now so nothing is left mounted; the kernel frees it when released.
            result = await RunAsync("umount", "--lazy", directory);
            Assert.True(result.ExitCode == 0, "umount failed: " + result.All);
        }
    }

    public static async Task ChattrAsync(string flag, IEnumerable<string> paths, bool check = true)
    {
        var result = await RunAsync("chattr", [flag, .. paths]);
        Assert.True(!check || result.ExitCode == 0, $"chattr {flag} failed: {result.All}");
    }

    /// <summary>Writes zeros to <paramref name="path"/> until the file system refuses (ENOSPC); returns that error's message.</summary>
    public static string FillUntilFull(string path, long maxBytes)
    {
        var chunk = new byte[64 * 1024];
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        try
        {
            for (long written = 0; written < maxBytes; written += chunk.Length)
            {
                file.Write(chunk);
            }
        }
        catch (IOException ex)
        {
            return ex.Message;
        }

        throw new InvalidOperationException($"wrote {maxBytes} bytes to {path} without filling its file system");
    }

    private static string? ProbeTmpfs()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "a tmpfs mount needs Linux";
        }

        var dir = Directory.CreateTempSubdirectory("pg-probe-").FullName;
        try
        {
            var mount = Run("mount", "-t", "tmpfs", "-o", "size=1m", "proxyguard-probe", dir);
            if (mount.ExitCode != 0)
            {
                return $"cannot make a full disk: 'mount -t tmpfs' is not permitted here (needs root with CAP_SYS_ADMIN outside a locked-down container): {mount.All.Trim()}";
            }

            var umount = Run("umount", dir);
            return umount.ExitCode == 0 ? null : "cannot unmount a probe tmpfs: " + umount.All.Trim();
        }
        finally
        {
            TryDelete(dir);
        }
    }

    private static string? ProbeImmutable()
    {
        if (!OperatingSystem.IsLinux() || !Cli.Exists("chattr"))
        {
            return "cannot make files unwritable: chattr (e2fsprogs) is not installed";
        }

        var dir = Directory.CreateTempSubdirectory("pg-probe-").FullName;
        var file = Path.Combine(dir, "probe");
        try
        {
            using var open = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            open.Write([1]);
            var chattr = Run("chattr", "+i", file);
            if (chattr.ExitCode != 0)
            {
                return $"cannot make files unwritable: 'chattr +i' fails in {Path.GetTempPath()} (not root, or the file system has no immutable flag): {chattr.All.Trim()}";
            }

            try
            {
                open.Write([2]);
                return $"cannot make files unwritable: the file system of {Path.GetTempPath()} ignores the immutable flag for descriptors already open (tmpfs does)";
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
        }
        finally
        {
            Run("chattr", "-i", file);
            TryDelete(dir);
        }
    }

    private static Task<CommandResult> RunAsync(string program, params string[] args) =>
        Cli.RunProgramAsync(program, args, Path.GetTempPath(), null, ToolTimeout);

    private static CommandResult Run(string program, params string[] args)
    {
        try
        {
            return RunAsync(program, args).GetAwaiter().GetResult();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new CommandResult(-1, string.Empty, $"{program}: {ex.Message}");
        }
    }

    private static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
