using System.CommandLine;
using ProxyGuard.Commands;

namespace ProxyGuard;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("ProxyGuard: the TLS-intercepting egress proxy for sandboxed AI agents.")
        {
            RunCommand.Create(),
            CaCommands.Create(),
            PolicyCommands.Create(),
            EnvCommand.Create(),
            EventsCommand.Create(),
        };

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await Console.Error.WriteLineAsync("proxyguard: " + error.Message);
            }

            await Console.Error.WriteLineAsync("Run 'proxyguard --help' for usage.");
            return ExitCodes.Usage;
        }

        // The host handles SIGINT/SIGTERM itself (graceful shutdown, event flush, exit 0).
        return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }
}
