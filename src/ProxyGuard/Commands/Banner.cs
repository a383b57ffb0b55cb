using ProxyGuard.Engine.Hosting;

namespace ProxyGuard.Commands;

/// <summary>What <c>run</c> prints at start: listeners, CA, the env command, and a policy summary.</summary>
internal static class Banner
{
    public static void Print(ProxyServer server, ProxyServerOptions options)
    {
        var policy = server.Services.Runtime.Current.Policy;
        var o = Console.Out;
        o.WriteLine($"proxyguard: proxy listening on {server.ProxyUrl}");
        o.WriteLine($"proxyguard: admin listening on {server.AdminUrl}");
        o.WriteLine($"proxyguard: CA certificate {Path.GetFullPath(server.CaCertificatePath)}{(server.CaCreated ? " (created)" : string.Empty)}");
        o.WriteLine($"proxyguard: admin token from {server.AdminTokenSource}");
        if (server.Services.Audit.Central is { } central)
        {
            o.WriteLine($"proxyguard: events shipped to {central.Display} as replica {central.ReplicaId} (local outbox {Path.GetFullPath(options.DataDirectory)})");
        }

        o.WriteLine($"proxyguard: policy {policy.FilePath} ({policy.Mode.ToString().ToLowerInvariant()}, default {policy.Default.ToString().ToLowerInvariant()}): " +
                    $"{policy.Rules.Count} rules, {policy.Clients.Count} clients" +
                    (policy.Clients.Count > 0 ? $" [{string.Join(", ", policy.Clients.Select(c => c.Id))}]" : string.Empty) +
                    $", {policy.Secrets.Count} secrets" +
                    (policy.Secrets.Count > 0 ? $" [{string.Join(", ", policy.Secrets.Select(s => s.Name))}]" : string.Empty));
        var proxy = server.ProxyUrl.StartsWith("unix:", StringComparison.Ordinal) ? string.Empty : $" --proxy {server.ProxyUrl}";

        // Absolute paths, so the line works from any directory; --data-dir matters: placeholders derive from the installation key stored there.
        o.WriteLine($"proxyguard: for a sandbox: eval \"$(proxyguard env --policy {Quote(Path.GetFullPath(options.PolicyPath))} --ca-dir {Quote(Path.GetFullPath(options.CaDirectory))} --data-dir {Quote(Path.GetFullPath(options.DataDirectory))}{proxy})\"");
        o.Flush();
    }

    /// <summary>Shell-quotes a path unless it is made only of characters that need none.</summary>
    internal static string Quote(string value) =>
        value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or ':' or '+' or ',' or '@' or '=')
            ? value
            : "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
