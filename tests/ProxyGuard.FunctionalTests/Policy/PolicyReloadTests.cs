using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>Hot reload: file edits (in place and by rename), SIGHUP and POST /api/policy/reload.</summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class PolicyReloadTests : IClassFixture<PolicyOrigin>
{
    private const int SigHup = 1;
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static readonly TimeSpan ReloadBudget = TimeSpan.FromSeconds(2);

    private readonly PolicyOrigin _o;

    public PolicyReloadTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    /// <summary>Allows /echo/{version}/** (and, for v1, the download and upload routes).</summary>
    private static string Version(string version, string extraPaths = "") => $$"""
        rules:
          - name: {{version}}-rule
            hosts: [localhost]
            ports: [{HTTPS}, {HTTP}]
            paths: ["/echo/{{version}}/**"{{extraPaths}}]
            action: allow
        """;

    private static readonly string V1 = Version("v1", ", \"/bytes/*\", \"/upload\"");
    private static readonly string V2 = Version("v2");

    [Fact]
    public async Task Editing_the_file_changes_decisions_within_2_s_without_dropping_in_flight_requests()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, V1);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        Assert.Equal("v1", await AllowedVersionAsync(client));

        // A large download, read slowly: headers and the first 2 MiB before the edit.
        const long downloadSize = 64L * 1024 * 1024;
        using var downloadClient = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var download = await downloadClient.GetAsync(_o.HttpsUrl($"/bytes/{downloadSize}"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        await using var downloadBody = await download.Content.ReadAsStreamAsync();
        using var downloadHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var received = await ReadAsync(downloadBody, downloadHash, 2 * 1024 * 1024);

        // An upload that has reached the origin and then stalls until after the reload.
        const long uploadSize = 8L * 1024 * 1024;
        var upload = new GatedStream(new DeterministicStream(uploadSize, seed: 11), pauseAfter: 1024 * 1024);
        using var uploadClient = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var uploadContent = new StreamContent(upload, 64 * 1024);
        var uploadTask = uploadClient.PostAsync(_o.HttpsUrl("/upload?inflight=1"), uploadContent);
        await upload.Paused.WaitAsync(TimeSpan.FromSeconds(30));
        await WaitUntilAsync(() => Task.FromResult(_o.OriginSaw("/upload?inflight=1")), TimeSpan.FromSeconds(30), () => proxy.Output);

        // The edit: v2 allows neither /bytes nor /upload.
        WritePolicy(proxy.PolicyPath, _o.Policy(V2));
        var took = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(took < ReloadBudget, $"the edit took effect after {took.TotalMilliseconds:F0} ms");
        Assert.Contains("policy reloaded", proxy.Output, StringComparison.Ordinal);

        // A new connection (curl) sees v2 too.
        var fresh = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/v1/after-edit"));
        Assert.True(fresh.Status == 403, fresh.ToString());
        var newDownload = await CurlAsync(proxy, "GET", _o.HttpsUrl("/bytes/10"));
        Assert.True(newDownload.Status == 403, newDownload.ToString());

        // The in-flight requests complete intact.
        upload.Release();
        using var uploadResponse = await uploadTask;
        Assert.Equal(HttpStatusCode.OK, uploadResponse.StatusCode);
        Assert.Equal($"{uploadSize} {upload.Inner.Hash()}", await uploadResponse.Content.ReadAsStringAsync());

        received += await ReadAsync(downloadBody, downloadHash, long.MaxValue);
        Assert.Equal(downloadSize, received);
        Assert.Equal(ExpectedDownloadHash(downloadSize), Convert.ToHexString(downloadHash.GetHashAndReset()).ToLowerInvariant());
        Assert.False(proxy.HasExited);
    }

    [Fact]
    public async Task An_invalid_edit_keeps_the_old_policy_and_logs_file_line_col_then_a_fix_is_picked_up()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, V1);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        Assert.Equal("v1", await AllowedVersionAsync(client));
        var shaBefore = await PolicyShaAsync(proxy);

        // A typo'd key (unknown keys are errors) in an otherwise v2 policy.
        var broken = _o.Policy(V2).Replace("    action: allow", "    acton: allow", StringComparison.Ordinal);
        var (line, col) = Position(broken, "acton");
        WritePolicy(proxy.PolicyPath, broken);
        var expected = $"{proxy.PolicyPath}:{line}:{col}:";
        await WaitUntilAsync(() => Task.FromResult(proxy.Output.Contains(expected, StringComparison.Ordinal)), TimeSpan.FromSeconds(15),
            () => $"expected '{expected}' in the log:\n{proxy.Output}");
        var logLine = proxy.Output.Split('\n').First(l => l.Contains(expected, StringComparison.Ordinal));
        Assert.Contains("acton", logLine, StringComparison.Ordinal);
        Assert.Contains("keeping the last good policy", logLine, StringComparison.Ordinal);

        // Still v1, over the existing connection and a new one.
        await Task.Delay(500);
        Assert.Equal("v1", await AllowedVersionAsync(client));
        var fresh = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/v1/after-bad-edit"));
        Assert.True(fresh.Status == 200, fresh.ToString());
        Assert.Equal(shaBefore, await PolicyShaAsync(proxy));

        // A broken YAML document, too.
        var syntax = _o.Policy(V2) + "  - [unclosed\n";
        WritePolicy(proxy.PolicyPath, syntax);
        await WaitUntilAsync(
            () => Task.FromResult(Regex.Count(proxy.Output, Regex.Escape(proxy.PolicyPath) + @":\d+:\d+: ") >= 2),
            TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.Equal("v1", await AllowedVersionAsync(client));

        // The fix is picked up (the watcher keeps working after errors).
        WritePolicy(proxy.PolicyPath, _o.Policy(V2));
        var took = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(took < ReloadBudget, $"the fix took effect after {took.TotalMilliseconds:F0} ms");
        Assert.Equal(Sha256(proxy.PolicyPath), await PolicyShaAsync(proxy));
    }

    [Fact]
    public async Task Replacing_the_file_by_rename_as_editors_do_is_picked_up_every_time()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, V1);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        Assert.Equal("v1", await AllowedVersionAsync(client));
        var policyDir = Path.GetDirectoryName(proxy.PolicyPath)!;

        // Write a temporary file next to it, then rename it over the policy (atomic save).
        for (var i = 0; i < 3; i++)
        {
            var (text, want) = i % 2 == 0 ? (V2, "v2") : (V1, "v1");
            var temp = Path.Combine(policyDir, $".policy.yaml.{i}.tmp");
            WritePolicy(temp, _o.Policy(text));
            File.Move(temp, proxy.PolicyPath, overwrite: true);
            var took = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == want, TimeSpan.FromSeconds(15), () => proxy.Output);
            Assert.True(took < ReloadBudget, $"rename {i} took effect after {took.TotalMilliseconds:F0} ms");
        }

        // vim's way without backupcopy: move the old file away, then write a new one.
        File.Move(proxy.PolicyPath, proxy.PolicyPath + "~", overwrite: true);
        WritePolicy(proxy.PolicyPath, _o.Policy(V2));
        var vim = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(vim < ReloadBudget, $"move-away-and-write took effect after {vim.TotalMilliseconds:F0} ms");

        // An unrelated file in the same directory does not trigger reloads. Let the reloads of
        // the steps above settle first (a save produces several events, debounced together).
        await Task.Delay(1500);
        var reloads = await ReloadCountAsync(proxy, "ok");
        WritePolicy(Path.Combine(policyDir, "unrelated.yaml"), "x: 1\n");
        await Task.Delay(1000);
        Assert.Equal(reloads, await ReloadCountAsync(proxy, "ok"));
        Assert.Equal(0, await ReloadCountAsync(proxy, "error"));
    }

    [Fact]
    public async Task Sighup_reloads_the_policy()
    {
        using var dir = new TempDir();

        // The policy path is a symlink into a "versions" directory. The watcher follows the link too
        // (ConfigMapReloadTests); here each step is driven by SIGHUP, as on a file system without events.
        var versions = Directory.CreateDirectory(dir.File("versions"), DirectoryMode).FullName;
        var target = Path.Combine(versions, "current.yaml");
        WritePolicy(target, _o.Policy(V1));
        var proxyDir = Directory.CreateDirectory(dir.File("proxy"), DirectoryMode).FullName;
        var link = Path.Combine(proxyDir, "policy.yaml");
        File.CreateSymbolicLink(link, target);
        await using var proxy = await ProxyProcess.StartWithPolicyFileAsync(proxyDir, link);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        Assert.Equal("v1", await AllowedVersionAsync(client));

        // SIGHUP with the file unchanged: one more successful load, and the process keeps serving.
        var ok = await ReloadCountAsync(proxy, "ok");
        proxy.Signal(SigHup);
        await WaitUntilAsync(async () => await ReloadCountAsync(proxy, "ok") == ok + 1, TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.False(proxy.HasExited);

        // An invalid target + SIGHUP: rejected with its location, the old policy stays.
        var broken = _o.Policy(V2).Replace("action: allow", "action: maybe", StringComparison.Ordinal);
        var (line, col) = Position(broken, "maybe");
        WritePolicy(target, broken);
        proxy.Signal(SigHup);
        var expected = $":{line}:{col}:";
        await WaitUntilAsync(
            () => Task.FromResult(proxy.Output.Split('\n').Any(l => l.Contains("keeping the last good policy", StringComparison.Ordinal) && l.Contains(expected, StringComparison.Ordinal))),
            TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.Equal("v1", await AllowedVersionAsync(client));

        // A valid target + SIGHUP: the new rules decide.
        WritePolicy(target, _o.Policy(V2));
        proxy.Signal(SigHup);
        var took = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(took < ReloadBudget, $"SIGHUP took effect after {took.TotalMilliseconds:F0} ms");
        Assert.False(proxy.HasExited);
    }

    [Fact]
    public async Task Post_api_policy_reload_returns_the_result_and_422_with_errors_when_invalid()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, V1);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var admin = proxy.AdminClient();

        // Without the admin token: 401.
        using (var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") })
        using (var refused = await anonymous.PostAsync("api/policy/reload", null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // Valid: 200 with the new file's hash.
        using (var ok = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            using var json = JsonDocument.Parse(await ok.Content.ReadAsStringAsync());
            Assert.True(json.RootElement.GetProperty("ok").GetBoolean());
            Assert.Equal(Sha256(proxy.PolicyPath), json.RootElement.GetProperty("sha256").GetString());
            Assert.Equal(0, json.RootElement.GetProperty("errors").GetArrayLength());
        }

        // Invalid: 422 with every error as FILE:LINE:COL: message; the old policy stays.
        var shaBefore = await PolicyShaAsync(proxy);
        var broken = _o.Policy(V2 + "\n  - name: bad-port\n    hosts: [example.org]\n    ports: [70000]\n    action: allow\n")
            .Replace("version: 1", "version: 1\nmood: enforce", StringComparison.Ordinal);
        var (portLine, portCol) = Position(broken, "70000");
        var (keyLine, keyCol) = Position(broken, "mood");
        WritePolicy(proxy.PolicyPath, broken);
        using (var rejected = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal((HttpStatusCode)422, rejected.StatusCode);
            using var json = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync());
            Assert.False(json.RootElement.GetProperty("ok").GetBoolean());
            var errors = json.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetString()!).ToList();
            Assert.Contains(errors, e => e.StartsWith($"{proxy.PolicyPath}:{portLine}:{portCol}: ", StringComparison.Ordinal) && e.Contains("70000", StringComparison.Ordinal));
            Assert.Contains(errors, e => e.StartsWith($"{proxy.PolicyPath}:{keyLine}:{keyCol}: ", StringComparison.Ordinal) && e.Contains("mood", StringComparison.Ordinal));
        }

        Assert.Equal(shaBefore, await PolicyShaAsync(proxy));
        Assert.Equal("v1", await AllowedVersionAsync(client));

        // A file writable by others is refused, and says why.
        WritePolicy(proxy.PolicyPath, _o.Policy(V2));
        File.SetUnixFileMode(proxy.PolicyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead);
        using (var writable = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal((HttpStatusCode)422, writable.StatusCode);
            var text = await writable.Content.ReadAsStringAsync();
            Assert.Contains($"{proxy.PolicyPath}:1:1: ", text, StringComparison.Ordinal);
        }

        Assert.Equal("v1", await AllowedVersionAsync(client));

        // Fixed permissions: 200, and the new policy decides.
        File.SetUnixFileMode(proxy.PolicyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        using (var fixedUp = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal(HttpStatusCode.OK, fixedUp.StatusCode);
        }

        Assert.Equal("v2", await AllowedVersionAsync(client));
        Assert.Equal(Sha256(proxy.PolicyPath), await PolicyShaAsync(proxy));
    }

    /// <summary>Which of /echo/v1 and /echo/v2 the proxy allows right now ("v1", "v2", "both" or "none").</summary>
    private async Task<string> AllowedVersionAsync(HttpClient client)
    {
        var marker = Guid.NewGuid().ToString("N")[..8];
        using var v1 = await client.GetAsync(_o.HttpsUrl($"/echo/v1/probe-{marker}"));
        using var v2 = await client.GetAsync(_o.HttpsUrl($"/echo/v2/probe-{marker}"));
        Assert.True(v1.StatusCode is HttpStatusCode.OK or HttpStatusCode.Forbidden, $"v1 probe: {v1.StatusCode}");
        Assert.True(v2.StatusCode is HttpStatusCode.OK or HttpStatusCode.Forbidden, $"v2 probe: {v2.StatusCode}");
        return (v1.StatusCode == HttpStatusCode.OK, v2.StatusCode == HttpStatusCode.OK) switch
        {
            (true, true) => "both",
            (true, false) => "v1",
            (false, true) => "v2",
            _ => "none",
        };
    }

    /// <summary>Writes a policy file with mode 0644 (policy files writable by group/other are refused).</summary>
    internal static void WritePolicy(string path, string text)
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        };
        using (var stream = new FileStream(path, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(text);
        }

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    /// <summary>1-based line and column of the first occurrence of <paramref name="needle"/>.</summary>
    internal static (int Line, int Col) Position(string text, string needle)
    {
        var index = text.IndexOf(needle, StringComparison.Ordinal);
        Assert.True(index >= 0, needle);
        var line = text[..index].Count(c => c == '\n') + 1;
        var col = index - (text.LastIndexOf('\n', Math.Max(0, index - 1)) + 1) + 1;
        return (line, col);
    }

    private static async Task<string> PolicyShaAsync(ProxyProcess proxy)
    {
        using var admin = proxy.AdminClient();
        using var json = JsonDocument.Parse(await admin.GetStringAsync("api/policy"));
        return json.RootElement.GetProperty("sha256").GetString()!;
    }

    private static string Sha256(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant();

    private static async Task<double> ReloadCountAsync(ProxyProcess proxy, string result)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(proxy.AdminUrl + "/metrics");
        var match = Regex.Match(text, $"^proxyguard_policy_reloads_total\\{{result=\"{result}\"\\}} (\\S+)$", RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static async Task<long> ReadAsync(Stream stream, IncrementalHash hash, long atMost)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        while (total < atMost)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, atMost - total)));
            if (n == 0)
            {
                break;
            }

            hash.AppendData(buffer, 0, n);
            total += n;
        }

        return total;
    }

    private static string ExpectedDownloadHash(long n)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        var random = new Random(42);
        for (long done = 0; done < n;)
        {
            var chunk = (int)Math.Min(buffer.Length, n - done);
            random.NextBytes(buffer.AsSpan(0, chunk));
            sha.AppendData(buffer, 0, chunk);
            done += chunk;
        }

        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>An upload body that stops after <c>pauseAfter</c> bytes until released.</summary>
    private sealed class GatedStream : Stream
    {
        private readonly long _pauseAfter;
        private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _position;

        public GatedStream(DeterministicStream inner, long pauseAfter)
        {
            Inner = inner;
            _pauseAfter = pauseAfter;
        }

        public DeterministicStream Inner { get; }

        public Task Paused => _paused.Task;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public void Release() => _released.TrySetResult();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= _pauseAfter && !_released.Task.IsCompleted)
            {
                _paused.TrySetResult();
                await _released.Task.WaitAsync(cancellationToken);
            }

            var limit = _position < _pauseAfter ? (int)Math.Min(buffer.Length, _pauseAfter - _position) : buffer.Length;
            var chunk = new byte[limit];
            var n = Inner.Read(chunk, 0, limit);
            chunk.AsSpan(0, n).CopyTo(buffer.Span);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
