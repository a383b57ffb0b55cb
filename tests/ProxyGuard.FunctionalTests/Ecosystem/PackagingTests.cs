using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// No container engine runs here, so the Dockerfile is proven piecewise: its <c>dotnet publish</c>
/// line is run as written (output redirected), and the published output is started with the image's
/// ENTRYPOINT and CMD (paths and addresses mapped to a temp dir and loopback), then probed with the
/// image's HEALTHCHECK command.
/// </summary>
[Collection("proxy")]
public sealed partial class PackagingTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string[] JsonArrayAfter(string dockerfile, string instruction)
    {
        var text = dockerfile.Replace("\\\n", " ", StringComparison.Ordinal);
        var line = text.Split('\n').Single(l => l.TrimStart().StartsWith(instruction + " ", StringComparison.Ordinal));
        var json = line[line.IndexOf('[', StringComparison.Ordinal)..];
        return JsonSerializer.Deserialize<string[]>(json)!;
    }

    [Fact]
    public async Task Dockerfile_publish_step_output_starts_and_passes_the_healthcheck()
    {
        var dockerfile = await File.ReadAllTextAsync(Repo.PathOf("Dockerfile"));
        var publishLine = dockerfile.Split('\n').Single(l => l.StartsWith("RUN dotnet publish ", StringComparison.Ordinal));
        var publishArgs = publishLine["RUN dotnet ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        var outIndex = publishArgs.IndexOf("-o");
        Assert.Equal("/app", publishArgs[outIndex + 1]);
        var app = Path.Combine(_dir.Path, "app");
        publishArgs[outIndex + 1] = app;
        publishArgs.Add("--nologo");

        var publish = await Cli.RunProgramAsync("dotnet", publishArgs, Repo.Root, null, TimeSpan.FromMinutes(15));
        Assert.True(publish.ExitCode == 0, publish.All);
        Assert.True(File.Exists(Path.Combine(app, "proxyguard.dll")), "publish output lacks proxyguard.dll");

        var entrypoint = JsonArrayAfter(dockerfile, "ENTRYPOINT");
        Assert.Equal(["dotnet", "/app/proxyguard.dll"], entrypoint);
        var help = await Cli.RunProgramAsync("dotnet", [Path.Combine(app, "proxyguard.dll"), "--help"], _dir.Path, null);
        Assert.True(help.ExitCode == 0, help.All);
        Assert.Contains("run", help.Stdout, StringComparison.Ordinal);

        // The image's CMD, with its paths under the temp dir and its listeners on loopback port 0.
        var etc = Directory.CreateDirectory(Path.Combine(_dir.Path, "etc", "proxyguard")).FullName;
        var varLib = Path.Combine(_dir.Path, "var", "lib", "proxyguard");
        await File.WriteAllTextAsync(Path.Combine(etc, "policy.yaml"), "version: 1\ndefault: deny\nrules: []\n");
        var cmd = JsonArrayAfter(dockerfile, "CMD")
            .Select(a => a.Replace("/etc/proxyguard", etc, StringComparison.Ordinal).Replace("/var/lib/proxyguard", varLib, StringComparison.Ordinal))
            .Select(a => a is "0.0.0.0:8080" or "127.0.0.1:9090" ? "127.0.0.1:0" : a)
            .ToList();
        Assert.Equal("run", cmd[0]);

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir.Path };
        psi.ArgumentList.Add(Path.Combine(app, "proxyguard.dll"));
        foreach (var a in cmd)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken;
        using var process = Process.Start(psi)!;
        var output = new ConcurrentQueue<string>();
        var admin = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            output.Enqueue(e.Data);
            if (AdminLine().Match(e.Data) is { Success: true } m)
            {
                admin.TrySetResult(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        process.ErrorDataReceived += (_, e) => output.Enqueue(e.Data ?? string.Empty);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var started = await Task.WhenAny(admin.Task, Task.Delay(TimeSpan.FromSeconds(90)));
            Assert.True(started == admin.Task, "published proxyguard did not start:\n" + string.Join('\n', output));
            var port = await admin.Task;
            Assert.True(File.Exists(Path.Combine(varLib, "ca", "ca.pem")), "the CA was not created in the CA volume");

            var health = JsonArrayAfter(dockerfile, "HEALTHCHECK");
            var probe = health.Select(a => a.Replace("/127.0.0.1/9090", $"/127.0.0.1/{port}", StringComparison.Ordinal)).ToList();
            var healthy = await Cli.RunProgramAsync(probe[0], probe.Skip(1), _dir.Path, null, TimeSpan.FromSeconds(30));
            Assert.True(healthy.ExitCode == 0, "HEALTHCHECK failed: " + healthy.All + "\n" + string.Join('\n', output));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        // With nothing listening the same probe fails (the healthcheck can fail).
        var down = JsonArrayAfter(dockerfile, "HEALTHCHECK")
            .Select(a => a.Replace("/127.0.0.1/9090", "/127.0.0.1/1", StringComparison.Ordinal)).ToList();
        Assert.NotEqual(0, (await Cli.RunProgramAsync(down[0], down.Skip(1), _dir.Path, null, TimeSpan.FromSeconds(30))).ExitCode);
    }

    [Fact]
    public async Task Compose_agent_env_step_writes_an_env_file_that_names_only_sandbox_paths()
    {
        // The agent-env service's shell command from samples/docker-compose/compose.yaml, with the
        // container's paths mapped into a temp dir and this build's CLI in place of /app.
        var compose = await File.ReadAllLinesAsync(Repo.PathOf("samples/docker-compose/compose.yaml"));
        var start = Array.FindIndex(compose, l => l.Contains("dotnet /app/proxyguard.dll env", StringComparison.Ordinal));
        Assert.True(start > 0, "agent-env command not found");
        var command = string.Join(' ', compose.Skip(start).TakeWhile(l => !l.TrimStart().StartsWith("volumes:", StringComparison.Ordinal)).Select(l => l.Trim()));
        var etc = Directory.CreateDirectory(Path.Combine(_dir.Path, "etc", "proxyguard")).FullName;
        var varLib = Directory.CreateDirectory(Path.Combine(_dir.Path, "var", "lib", "proxyguard")).FullName;
        var home = Directory.CreateDirectory(Path.Combine(_dir.Path, "home", "app")).FullName;
        await File.WriteAllTextAsync(Path.Combine(etc, "policy.yaml"), """
            version: 1
            default: deny
            rules:
              - name: github
                hosts: [api.github.com]
                action: allow
            secrets:
              - name: github
                value: env:PG_TEST_COMPOSE_TOKEN
                sandbox_env: GITHUB_TOKEN
                hosts: [api.github.com]
            """);
        var init = await Cli.RunAsync(_dir.Path, "ca", "init", "--dir", Path.Combine(varLib, "ca"));
        Assert.True(init.ExitCode == 0, init.All);

        // agent-env runs once the proxy is healthy (depends_on): by then the proxy has created its installation key.
        Assert.Contains("service_healthy", string.Join('\n', compose), StringComparison.Ordinal);
        _ = ProxyGuard.Engine.Runtime.SnapshotBuilder.LoadInstallationKey(varLib);
        var mapped = command
            .Replace("dotnet /app/proxyguard.dll", $"dotnet '{ProxyProcess.DllPath}'", StringComparison.Ordinal)
            .Replace("/etc/proxyguard/", etc + "/", StringComparison.Ordinal)
            .Replace("--ca-dir /var/lib/proxyguard/ca", $"--ca-dir {varLib}/ca", StringComparison.Ordinal)
            .Replace("--data-dir /var/lib/proxyguard", $"--data-dir {varLib}", StringComparison.Ordinal)
            .Replace("cp /var/lib/proxyguard/ca/", $"cp {varLib}/ca/", StringComparison.Ordinal)
            .Replace(" /var/lib/proxyguard/ca/bundle.pem", $" {varLib}/ca/bundle.pem", StringComparison.Ordinal)
            .Replace("s#/var/lib/proxyguard/ca/#", $"s#{varLib}/ca/#", StringComparison.Ordinal)
            .Replace("/home/app", home, StringComparison.Ordinal);
        var run = await Cli.RunProgramAsync("sh", ["-c", mapped], _dir.Path, new Dictionary<string, string> { ["PG_TEST_COMPOSE_TOKEN"] = "synthetic-compose-value" });
        Assert.True(run.ExitCode == 0, mapped + "\n" + run.All);

        var env = (await File.ReadAllLinesAsync(Path.Combine(home, "proxyguard.env"))).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal("http://proxyguard:8080", env["HTTPS_PROXY"]);
        Assert.Equal("/etc/proxyguard-sandbox/ca.pem", env["NODE_EXTRA_CA_CERTS"]);
        Assert.Equal("/etc/proxyguard-sandbox/bundle.pem", env["SSL_CERT_FILE"]);
        Assert.StartsWith("PG_", env["GITHUB_TOKEN"], StringComparison.Ordinal);
        Assert.DoesNotContain(env.Values, v => v.Contains(varLib, StringComparison.Ordinal) || v.Contains("synthetic-compose-value", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(home, "ca.pem")) && File.Exists(Path.Combine(home, "bundle.pem")));
        Assert.False(File.Exists(Path.Combine(home, "ca-key.pem")));
    }

    [GeneratedRegex(@"^proxyguard: admin listening on http://127\.0\.0\.1:(\d+)$")]
    private static partial Regex AdminLine();
}
