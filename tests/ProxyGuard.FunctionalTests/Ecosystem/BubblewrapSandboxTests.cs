using System.Net.NetworkInformation;
using System.Net.Sockets;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// <c>samples/bubblewrap/pg-sandbox</c>: a command in a network namespace whose only way out is
/// ProxyGuard on a Unix socket (<c>run --listen unix:PATH</c>), bridged inside by socat.
/// </summary>
[Collection("proxy")]
public sealed class BubblewrapSandboxTests : IAsyncLifetime, IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TestPki _pki = new();
    private TestOrigin _origin = null!;
    private ProxyProcess _proxy = null!;
    private string _socket = string.Empty;
    private string _envFile = string.Empty;

    public async Task InitializeAsync()
    {
        if (!Cli.Exists("bwrap") || !Cli.Exists("socat"))
        {
            return;
        }

        _origin = await TestOrigin.StartAsync(_pki.Issue(["origin.test", "localhost", "127.0.0.1"]));
        var caPath = _pki.WriteCaPem(_dir.Path);
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{caPath}]
            rules:
              - name: origin
                hosts: [origin.test]
                ports: [{_origin.HttpsPort}]
                action: allow
            """;
        var proxyDir = Path.Combine(_dir.Path, "proxy");
        var socketDir = Path.Combine(_dir.Path, "sock");
        Directory.CreateDirectory(socketDir);
        _socket = Path.Combine(socketDir, "proxy.sock");
        _proxy = await ProxyProcess.StartAsync(proxyDir, policy, ["--resolve", "origin.test=127.0.0.1"], listen: "unix:" + _socket);
        Assert.Equal("unix:" + _socket, _proxy.ProxyUrl);

        var env = await Cli.RunAsync(proxyDir, "env", "--format", "dotenv", "--proxy", "http://127.0.0.1:3128",
            "--policy", _proxy.PolicyPath, "--ca-dir", _proxy.CaDirectory, "--data-dir", _proxy.DataDirectory);
        Assert.True(env.ExitCode == 0, env.All);
        _envFile = _dir.Write("sandbox.env", env.Stdout);
    }

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        if (_origin is not null)
        {
            await _origin.DisposeAsync();
        }
    }

    public void Dispose()
    {
        _pki.Dispose();
        _dir.Dispose();
    }

    private Task<CommandResult> SandboxAsync(string script) =>
        Cli.RunProgramAsync(Repo.PathOf("samples/bubblewrap/pg-sandbox"),
            ["--socket", _socket, "--env-file", _envFile, "--hide", _proxy.Directory, "--", "/bin/bash", "-c", script],
            _dir.Path, new Dictionary<string, string> { ["PG_TEST_HOST_ONLY"] = "synthetic-host-value" }, TimeSpan.FromMinutes(2));

    private string OriginUrl(string path, string host = "origin.test") => $"https://{host}:{_origin.HttpsPort}{path}";

    [RequiresToolsFact("bwrap", "socat", "curl")]
    public async Task Proxied_request_from_the_sandbox_reaches_the_origin()
    {
        var result = await SandboxAsync($"curl -sS --fail --max-time 60 '{OriginUrl("/echo/sandbox-proxied")}'");
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("\"target\":\"/echo/sandbox-proxied\"", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(_origin.Received, r => r == "GET /echo/sandbox-proxied");
        var e = await _proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString() == "/echo/sandbox-proxied", 15000);
        Assert.Equal("allow", e.GetProperty("decision").GetString());
    }

    [RequiresToolsFact("bwrap", "socat", "curl")]
    public async Task Policy_still_decides_inside_the_sandbox()
    {
        var result = await SandboxAsync($"curl -sS --max-time 60 -o /dev/null -w '%{{http_code}}' '{OriginUrl("/", "denied.test")}'");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("403", result.All, StringComparison.Ordinal);
    }

    [RequiresToolsFact("bwrap", "socat", "curl")]
    public async Task Curl_noproxy_cannot_reach_the_origin()
    {
        var loopback = await SandboxAsync($"curl -sS --noproxy '*' --max-time 20 -k '{OriginUrl("/echo/sandbox-direct", "127.0.0.1")}'");
        Assert.Equal(7, loopback.ExitCode);
        var byName = await SandboxAsync($"curl -sS --noproxy '*' --max-time 20 -k '{OriginUrl("/echo/sandbox-direct-name")}'");
        Assert.NotEqual(0, byName.ExitCode);
        Assert.DoesNotContain(_origin.Received, r => r.Contains("sandbox-direct", StringComparison.Ordinal));

        // The same direct request from outside the sandbox does reach the origin: the failure above is the sandbox's doing.
        var outside = await Cli.RunProgramAsync("curl", ["-sS", "--noproxy", "*", "-k", "--max-time", "20", OriginUrl("/echo/outside-direct", "127.0.0.1")], _dir.Path, null);
        Assert.True(outside.ExitCode == 0, outside.All);
    }

    [RequiresToolsFact("bwrap", "socat")]
    public async Task Sandbox_has_only_loopback_and_no_route_out()
    {
        var interfaces = await SandboxAsync("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
        Assert.True(interfaces.ExitCode == 0, interfaces.All);
        Assert.Equal("lo", interfaces.Stdout.Trim());

        var hostAddress = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
        foreach (var target in new[] { hostAddress?.ToString(), "192.0.2.1" }.OfType<string>())
        {
            var direct = await SandboxAsync($"exec 3<>/dev/tcp/{target}/443");
            Assert.NotEqual(0, direct.ExitCode);
            Assert.Contains("Network is unreachable", direct.Stderr, StringComparison.Ordinal);
        }
    }

    [RequiresToolsFact("bwrap", "socat")]
    public async Task Sandbox_sees_the_env_output_but_not_the_ca_key_or_the_callers_environment()
    {
        var keyPath = Path.Combine(_proxy.CaDirectory, "ca-key.pem");
        Assert.True(File.Exists(keyPath));
        var result = await SandboxAsync(
            "echo \"proxy=$HTTPS_PROXY\"; echo \"host=${PG_TEST_HOST_ONLY:-unset}\"; " +
            $"test -s \"$SSL_CERT_FILE\" && echo bundle-readable; test -s \"$PROXYGUARD_CA_CERT\" && echo ca-readable; " +
            $"cat '{keyPath}' >/dev/null 2>&1 && echo key-readable || echo key-hidden; " +
            $"cat '{_proxy.PolicyPath}' >/dev/null 2>&1 && echo policy-readable || echo policy-hidden");
        Assert.True(result.ExitCode == 0, result.All);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["proxy=http://127.0.0.1:3128", "host=unset", "bundle-readable", "ca-readable", "key-hidden", "policy-hidden"], lines);
    }
}
