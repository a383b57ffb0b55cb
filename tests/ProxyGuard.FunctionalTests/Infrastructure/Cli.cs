using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ProxyGuard.FunctionalTests.Infrastructure;

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public string All => Stdout + Stderr;
}

/// <summary>Runs the proxyguard CLI and other programs (curl, git, python3, node) with a bounded time.</summary>
public static partial class Cli
{
    public static Task<CommandResult> RunAsync(string workingDirectory, params string[] args) =>
        RunProgramAsync("dotnet", [ProxyProcess.DllPath, .. args], workingDirectory, null);

    public static async Task<CommandResult> RunProgramAsync(
        string program, IEnumerable<string> args, string workingDirectory, IDictionary<string, string>? environment,
        TimeSpan? timeout = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var name in new[] { "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy", "SSL_CERT_FILE" })
        {
            psi.Environment.Remove(name);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} timed out:\n{await stderr}");
        }

        return new CommandResult(process.ExitCode, await stdout, await stderr);
    }

    public static bool Exists(string program) =>
        Environment.GetEnvironmentVariable("PATH")!.Split(':').Any(d => File.Exists(Path.Combine(d, program)));

    public static int Kill(int pid, int signal) => SysKill(pid, signal);

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SysKill(int pid, int sig);
}
