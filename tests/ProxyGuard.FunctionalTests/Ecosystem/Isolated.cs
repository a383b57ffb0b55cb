using System.Diagnostics;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Runs a program whose environment is exactly what <c>proxyguard env</c> printed plus PATH, an empty
/// HOME and LANG: nothing inherited from the test process can make a client work by accident.
/// </summary>
public static class Isolated
{
    public static async Task<CommandResult> RunAsync(
        string program, IEnumerable<string> args, string workingDirectory, IReadOnlyDictionary<string, string> env,
        IReadOnlyDictionary<string, string>? extra = null, TimeSpan? timeout = null)
    {
        var home = Path.Combine(workingDirectory, "home-" + Guid.NewGuid().ToString("n")[..8]);
        Directory.CreateDirectory(home);
        var psi = new ProcessStartInfo(Resolve(program))
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

        psi.Environment.Clear();
        psi.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin";
        psi.Environment["HOME"] = home;
        psi.Environment["LANG"] = "C.UTF-8";
        foreach (var (k, v) in env)
        {
            psi.Environment[k] = v;
        }

        foreach (var (k, v) in extra ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(180));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} timed out:\n{await stdout}\n{await stderr}");
        }

        return new CommandResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The real executable behind a name (pyenv shims need the caller's HOME, so resolve them first).</summary>
    public static string Resolve(string program)
    {
        if (program != "python3")
        {
            return program;
        }

        using var p = Process.Start(new ProcessStartInfo("python3", ["-c", "import sys; print(sys.executable)"]) { RedirectStandardOutput = true })!;
        var path = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return path.Length > 0 ? path : program;
    }
}
