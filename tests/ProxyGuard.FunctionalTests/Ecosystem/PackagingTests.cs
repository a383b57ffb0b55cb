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

    [GeneratedRegex(@"^proxyguard: admin listening on http://127\.0\.0\.1:(\d+)$")]
    private static partial Regex AdminLine();
}
