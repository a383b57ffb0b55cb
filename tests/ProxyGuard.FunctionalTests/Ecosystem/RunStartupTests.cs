using System.Net;
using System.Net.Sockets;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>What <c>proxyguard run</c> tells an operator at start, on failure, and to systemd.</summary>
[Collection("proxy")]
public sealed class RunStartupTests : IDisposable
{
    private const string SyntheticSecret = "synthetic-real-value-4b1d9e";
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Policy = """
        version: 1
        default: deny
        clients:
          - id: agent-1
            token: env:PG_TEST_AGENT_TOKEN
        rules:
          - name: github-api
            hosts: [api.github.com]
            action: allow
          - name: pypi
            hosts: [pypi.org, files.pythonhosted.org]
            methods: [GET]
            action: allow
        secrets:
          - name: github
            value: env:PG_TEST_GITHUB_TOKEN
            sandbox_env: GITHUB_TOKEN
            hosts: [api.github.com]
        """;

    private static Dictionary<string, string> SecretEnv => new()
    {
        ["PG_TEST_AGENT_TOKEN"] = "synthetic-agent-token", ["PG_TEST_GITHUB_TOKEN"] = SyntheticSecret,
    };

    [Fact]
    public async Task Banner_lists_listeners_ca_policy_summary_and_a_working_env_command()
    {
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(_dir.Path, "p"), Policy, environment: SecretEnv);
        var lines = proxy.Output.Split('\n');
        Assert.Contains(lines, l => l == "proxyguard: proxy listening on " + proxy.ProxyUrl);
        Assert.Contains(lines, l => l == "proxyguard: admin listening on " + proxy.AdminUrl);
        Assert.Matches(@"^http://127\.0\.0\.1:\d+$", proxy.ProxyUrl);
        Assert.Contains(lines, l => l.StartsWith("proxyguard: CA certificate " + proxy.CaPath, StringComparison.Ordinal));
        var summary = Assert.Single(lines, l => l.StartsWith("proxyguard: policy ", StringComparison.Ordinal));
        Assert.Contains("2 rules, 1 clients [agent-1], 1 secrets [github]", summary, StringComparison.Ordinal);
        Assert.DoesNotContain(SyntheticSecret, proxy.Output, StringComparison.Ordinal);

        // The printed command, run as printed (the CLI in place of the installed binary), yields the
        // same proxy, CA and placeholder that the running proxy substitutes.
        var envLine = Assert.Single(lines, l => l.StartsWith("proxyguard: for a sandbox: eval \"$(proxyguard env ", StringComparison.Ordinal));
        var command = envLine["proxyguard: for a sandbox: eval \"$(".Length..^2];
        var shim = _dir.Write("bin/proxyguard", $"#!/bin/sh\nexec dotnet '{ProxyProcess.DllPath}' \"$@\"\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var env = new Dictionary<string, string> { ["PATH"] = Path.GetDirectoryName(shim) + ":" + Environment.GetEnvironmentVariable("PATH") };
        var result = await Cli.RunProgramAsync("bash", ["-c", $"eval \"$({command})\" && echo \"$HTTPS_PROXY|$PROXYGUARD_CA_CERT|$GITHUB_TOKEN\""], proxy.Directory, env);
        Assert.True(result.ExitCode == 0, result.All);
        var parts = result.Stdout.Trim().Split('|');
        Assert.Equal(proxy.ProxyUrl, parts[0]);
        Assert.Equal(proxy.CaPath, parts[1]);
        var expected = await proxy.EnvAsync();
        Assert.Equal(expected["GITHUB_TOKEN"], parts[2]);
        Assert.NotEqual(SyntheticSecret, parts[2]);
    }

    private async Task<CommandResult> RunExpectingFailureAsync(params string[] args)
    {
        var dir = Path.Combine(_dir.Path, "fail-" + Guid.NewGuid().ToString("n")[..6]);
        Directory.CreateDirectory(dir);
        var psiArgs = new List<string> { ProxyProcess.DllPath, "run", "--ca-dir", Path.Combine(dir, "ca"), "--data-dir", Path.Combine(dir, "data") };
        psiArgs.AddRange(args);
        var result = await Cli.RunProgramAsync("dotnet", psiArgs, dir, SecretEnv, TimeSpan.FromMinutes(2));
        Assert.DoesNotContain("   at ", result.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.All, StringComparison.Ordinal);
        return result;
    }

    private static string OneLine(CommandResult result)
    {
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line on stderr, got:\n" + result.Stderr);
        Assert.StartsWith("proxyguard: ", lines[0], StringComparison.Ordinal);
        return lines[0];
    }

    [Fact]
    public async Task Port_in_use_is_one_clear_line()
    {
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        var port = ((IPEndPoint)busy.LocalEndpoint).Port;
        var policy = _dir.Write("busy.yaml", Policy);
        var result = await RunExpectingFailureAsync("--policy", policy, "--listen", $"127.0.0.1:{port}", "--admin", "127.0.0.1:0");
        Assert.Equal(1, result.ExitCode);
        var line = OneLine(result);
        Assert.Contains($"127.0.0.1:{port}", line, StringComparison.Ordinal);
        Assert.Contains("in use", line, StringComparison.OrdinalIgnoreCase);

        // Both listeners speak plain HTTP to their clients: the address is shown as such, with the option that set it.
        Assert.Contains($"http://127.0.0.1:{port} (--listen 127.0.0.1:{port})", line, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", line, StringComparison.Ordinal);
        var admin = OneLine(await RunExpectingFailureAsync("--policy", policy, "--listen", "127.0.0.1:0", "--admin", $"127.0.0.1:{port}"));
        Assert.Contains($"http://127.0.0.1:{port} (--admin 127.0.0.1:{port})", admin, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_banner_env_command_works_from_any_directory_and_env_elsewhere_creates_nothing()
    {
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(_dir.Path, "p"), Policy, environment: SecretEnv);
        var envLine = Assert.Single(proxy.Output.Split('\n'), l => l.StartsWith("proxyguard: for a sandbox: eval \"$(proxyguard env ", StringComparison.Ordinal));
        var command = envLine["proxyguard: for a sandbox: eval \"$(".Length..^2];
        var shim = _dir.Write("bin/proxyguard", $"#!/bin/sh\nexec dotnet '{ProxyProcess.DllPath}' \"$@\"\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var elsewhere = Path.Combine(_dir.Path, "elsewhere");
        Directory.CreateDirectory(elsewhere);
        var env = new Dictionary<string, string> { ["PATH"] = Path.GetDirectoryName(shim) + ":" + Environment.GetEnvironmentVariable("PATH") };

        var result = await Cli.RunProgramAsync("bash", ["-c", $"eval \"$({command})\" && echo \"$PROXYGUARD_CA_CERT|$GITHUB_TOKEN\""], elsewhere, env);
        Assert.True(result.ExitCode == 0, result.All);
        var parts = result.Stdout.Trim().Split('|');
        Assert.Equal(proxy.CaPath, parts[0]);
        Assert.Equal((await proxy.EnvAsync())["GITHUB_TOKEN"], parts[1]);
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));

        // Without the proxy's --data-dir (it uses "data", not the default): no placeholder of a made-up key, a clear error.
        var wrong = await Cli.RunAsync(proxy.Directory, "env", "--policy", proxy.PolicyPath, "--ca-dir", proxy.CaDirectory);
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains(Path.Combine(proxy.Directory, ".proxyguard", "installation.key"), wrong.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("GITHUB_TOKEN", wrong.Stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(proxy.Directory, ".proxyguard")));
    }

    [Fact]
    public async Task Listeners_can_be_given_as_the_urls_the_banner_prints()
    {
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(_dir.Path, "url"), Policy, environment: SecretEnv, listen: "http://127.0.0.1:0/");
        Assert.Matches(@"^http://127\.0\.0\.1:\d+$", proxy.ProxyUrl);

        // The admin listener too: a taken port shows that the URL was understood as that address.
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        var port = ((IPEndPoint)busy.LocalEndpoint).Port;
        var policy = _dir.Write("url.yaml", Policy);
        var line = OneLine(await RunExpectingFailureAsync("--policy", policy, "--listen", "127.0.0.1:0", "--admin", $"http://127.0.0.1:{port}"));
        Assert.Contains($"cannot listen on http://127.0.0.1:{port} (--admin 127.0.0.1:{port})", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_policy_file_is_one_clear_line()
    {
        var missing = Path.Combine(_dir.Path, "nope", "policy.yaml");
        var result = await RunExpectingFailureAsync("--policy", missing, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0");
        Assert.Equal(1, result.ExitCode);
        var line = OneLine(result);
        Assert.Contains(missing, line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_listen_address_is_a_usage_error_on_one_line()
    {
        var policy = _dir.Write("usage.yaml", Policy);
        var result = await RunExpectingFailureAsync("--policy", policy, "--listen", "localhost-ish", "--admin", "127.0.0.1:0");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--listen", OneLine(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unusable_data_dir_is_one_clear_line()
    {
        var policy = _dir.Write("data.yaml", Policy);
        var notADirectory = _dir.Write("a-file", "x");
        var dir = Path.Combine(_dir.Path, "datafail");
        Directory.CreateDirectory(dir);
        var result = await Cli.RunProgramAsync("dotnet",
            [ProxyProcess.DllPath, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ca-dir", Path.Combine(dir, "ca"), "--data-dir", notADirectory],
            dir, SecretEnv, TimeSpan.FromMinutes(2));
        Assert.Equal(1, result.ExitCode);
        Assert.DoesNotContain("   at ", result.All, StringComparison.Ordinal);
        OneLine(result);
    }

    [Fact]
    public async Task Tells_systemd_when_ready_and_when_stopping()
    {
        var socketPath = Path.Combine(_dir.Path, "notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(socketPath));
        var env = new Dictionary<string, string>(SecretEnv) { ["NOTIFY_SOCKET"] = socketPath };
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(_dir.Path, "sd"), Policy, environment: env);

        Assert.Equal("READY=1", await ReceiveAsync(notify));
        proxy.Signal(15);
        Assert.Equal("STOPPING=1", await ReceiveAsync(notify));
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60)));
    }

    private static async Task<string> ReceiveAsync(Socket socket)
    {
        var buffer = new byte[512];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, n).Trim();
    }
}
