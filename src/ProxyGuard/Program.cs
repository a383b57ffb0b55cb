using System.CommandLine;
using ProxyGuard.Commands;

namespace ProxyGuard;

public static class Program
{
    /// <summary>Set (to anything) to get the full exception instead of the one-line error.</summary>
    internal const string DebugVariable = "PROXYGUARD_DEBUG";

    public static async Task<int> Main(string[] args)
    {
        var parse = CreateRoot().Parse(HelpAlias(args));
        if (parse.Errors.Count > 0)
        {
            // One line per distinct problem (three missing arguments are one "argument missing").
            foreach (var message in parse.Errors.Select(e => OneLine(e.Message)).Distinct(StringComparer.Ordinal))
            {
                await Console.Error.WriteLineAsync("proxyguard: " + message);
            }

            await Console.Error.WriteLineAsync("Run 'proxyguard --help' for usage.");
            if (EnvCommand.WantsShellOutput(parse))
            {
                await Console.Out.WriteAsync(EnvCommand.FailedShellStatement); // eval "$(proxyguard env --typo)" must fail too
            }

            return ExitCodes.Usage;
        }

        try
        {
            // The host handles SIGINT/SIGTERM itself (graceful shutdown, event flush, exit 0).
            return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A mistake (a file that cannot be read, a value that cannot be parsed) is one line, never a stack trace.
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(DebugVariable)))
            {
                await Console.Error.WriteLineAsync("proxyguard: " + ex);
            }
            else
            {
                await Console.Error.WriteLineAsync($"proxyguard: {OneLine(ex.Message)} ({ex.GetType().Name}; set {DebugVariable}=1 for details)");
            }

            return ExitCodes.Failed;
        }
    }

    /// <summary>Every command; the documentation test parses the command lines of the docs with it.</summary>
    internal static RootCommand CreateRoot() => new("ProxyGuard: the TLS-intercepting egress proxy for sandboxed AI agents.")
    {
        RunCommand.Create(),
        CaCommands.Create(),
        PolicyCommands.Create(),
        EnvCommand.Create(),
        EventsCommand.Create(),
        GrantCommand.Create(),
    };

    /// <summary><c>proxyguard help [COMMAND...]</c> is <c>proxyguard [COMMAND...] --help</c>.</summary>
    internal static string[] HelpAlias(string[] args) =>
        args is ["help", .. var rest] ? [.. rest, "--help"] : args;

    private static string OneLine(string message) => RunCommand.OneLine(message).Replace("\t", " ", StringComparison.Ordinal);
}
