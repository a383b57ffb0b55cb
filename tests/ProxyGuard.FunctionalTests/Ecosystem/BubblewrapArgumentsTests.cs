using System.Net.Sockets;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// <c>samples/bubblewrap/pg-sandbox</c> run against a stand-in <c>bwrap</c> that records its arguments (so this runs
/// where bubblewrap is not installed): only the proxy socket file is bound, never its directory (an admin socket
/// beside it stays out of the sandbox), and quoted dotenv values from <c>proxyguard env</c> arrive unquoted and exact.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class BubblewrapArgumentsTests
{
    [Fact]
    public async Task Only_the_proxy_socket_file_is_bound_and_quoted_env_values_arrive_exactly()
    {
        using var dir = new TempDir();
        var socketDir = Path.Combine(dir.Path, "run");
        Directory.CreateDirectory(socketDir);
        var proxySocket = Path.Combine(socketDir, "proxy.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(proxySocket));
        using var admin = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        admin.Bind(new UnixDomainSocketEndPoint(Path.Combine(socketDir, "admin.sock")));

        var bin = Path.Combine(dir.Path, "bin");
        Directory.CreateDirectory(bin);
        var argsFile = Path.Combine(dir.Path, "bwrap.args");
        await File.WriteAllTextAsync(Path.Combine(bin, "bwrap"), $"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{argsFile}'\n");
        await File.WriteAllTextAsync(Path.Combine(bin, "socat"), "#!/bin/sh\nexit 0\n");
        foreach (var tool in new[] { "bwrap", "socat" })
        {
            File.SetUnixFileMode(Path.Combine(bin, tool), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var proxyValue = "http://127.0.0.1:3128/a b'c$(touch x)";
        await EnvOutputSafetyTests.InitCaAsync(dir.Path, Path.Combine(dir.Path, "ca"));
        var env = await Cli.RunAsync(dir.Path, "env", "--format", "dotenv", "--proxy", proxyValue, "--ca-dir", Path.Combine(dir.Path, "ca"),
            "--data-dir", Path.Combine(dir.Path, "data"));
        Assert.True(env.ExitCode == 0, env.All);
        var envFile = dir.Write("sandbox.env", env.Stdout);

        var path = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        var result = await Cli.RunProgramAsync(Repo.PathOf("samples/bubblewrap/pg-sandbox"),
            ["--socket", proxySocket, "--env-file", envFile, "--", "/bin/true"], dir.Path, new Dictionary<string, string> { ["PATH"] = path },
            TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, result.All);
        var args = (await File.ReadAllTextAsync(argsFile)).Split('\0');

        var binds = Enumerable.Range(0, args.Length - 2).Where(i => args[i] is "--ro-bind" or "--bind").Select(i => (Src: args[i + 1], Dst: args[i + 2])).ToList();
        Assert.Contains((proxySocket, "/run/pg-proxy/proxy.sock"), binds);
        Assert.DoesNotContain(binds, b => b.Src == socketDir || b.Src == socketDir + "/");
        Assert.DoesNotContain(args, a => a.Contains("admin.sock", StringComparison.Ordinal));

        var setenv = Enumerable.Range(0, args.Length - 2).Where(i => args[i] == "--setenv").ToDictionary(i => args[i + 1], i => args[i + 2]);
        Assert.Equal(proxyValue, setenv["HTTPS_PROXY"]);
        Assert.Equal(string.Empty, setenv["NO_PROXY"]);
        Assert.False(File.Exists(Path.Combine(dir.Path, "x")));
    }
}
