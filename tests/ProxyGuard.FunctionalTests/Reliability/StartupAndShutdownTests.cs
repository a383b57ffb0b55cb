using System.Net;
using System.Net.Sockets;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>CA files corrupt at start (one clear line, exit 1) and graceful shutdown on SIGTERM.</summary>
[Collection("proxy")]
public sealed class StartupAndShutdownTests
{
    private const string Policy = """
        version: 1
        default: deny
        network:
          allow_destinations: [127.0.0.0/8]
        content:
          builtin: none
        rules:
          - name: origin
            hosts: [127.0.0.1]
            ports: [PORT]
            action: allow
        """;

    [Theory]
    [InlineData("garbage-certificate")]
    [InlineData("garbage-key")]
    [InlineData("key-missing")]
    [InlineData("key-is-a-directory")]
    public async Task Corrupt_or_unreadable_CA_files_stop_the_start_with_one_clear_line_and_exit_1(string fault)
    {
        using var dir = new TempDir();
        var ca = Path.Combine(dir.Path, "ca");
        var init = await Cli.RunAsync(dir.Path, "ca", "init", "--dir", ca);
        Assert.True(init.ExitCode == 0, init.All);
        var keyPath = Path.Combine(ca, "ca-key.pem");
        switch (fault)
        {
            case "garbage-certificate":
                await File.WriteAllTextAsync(Path.Combine(ca, "ca.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
                break;
            case "garbage-key":
                await File.WriteAllBytesAsync(keyPath, [0x30, 0x82, 0xFF, 0x00, 0x13, 0x37]);
                break;
            case "key-missing":
                File.Delete(keyPath);
                break;
            case "key-is-a-directory":
                File.Delete(keyPath);
                Directory.CreateDirectory(keyPath);
                break;
        }

        var policy = dir.Write("policy.yaml", Policy.Replace("PORT", "8443", StringComparison.Ordinal));
        var result = await Cli.RunAsync(dir.Path, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--ca-dir", ca, "--data-dir", Path.Combine(dir.Path, "data"));
        Assert.Equal(1, result.ExitCode);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("proxyguard: ", line, StringComparison.Ordinal);
        Assert.Contains(ca, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.All, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_stops_accepting_lets_the_in_flight_request_finish_flushes_its_event_and_exits_0()
    {
        await using var origin = new FaultOrigin(FaultBehaviour.HoldThenOk);
        using var dir = new TempDir();
        var proxyDir = Path.Combine(dir.Path, "proxy");
        var proxy = await ProxyProcess.StartAsync(proxyDir, Policy.Replace("PORT", origin.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        try
        {
            var proxyUri = new Uri(proxy.ProxyUrl);
            using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
            var inFlight = client.GetAsync($"http://127.0.0.1:{origin.Port}/in-flight");
            await origin.RequestSeen.WaitAsync(TimeSpan.FromSeconds(60));

            proxy.Signal(15);

            // Stops accepting: new connections are refused while the request is still held by the origin.
            var refused = false;
            for (var i = 0; i < 300 && !refused; i++)
            {
                using var probe = new TcpClient();
                try
                {
                    await probe.ConnectAsync(proxyUri.Host, proxyUri.Port);
                    await Task.Delay(100);
                }
                catch (SocketException)
                {
                    refused = true;
                }
            }

            Assert.True(refused, "the proxy still accepted connections after SIGTERM:\n" + proxy.Output);
            Assert.False(inFlight.IsCompleted, "the in-flight request ended before the origin answered");

            // The in-flight request completes normally.
            origin.Release();
            using var response = await inFlight.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("held-then-ok", await response.Content.ReadAsStringAsync());

            // Exits 0 within a bound.
            Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        }
        finally
        {
            await proxy.DisposeAsync();
        }

        // Its event was flushed to the store: a new process on the same data directory serves it.
        await using var again = await ProxyProcess.StartWithPolicyFileAsync(proxyDir, Path.Combine(proxyDir, "policy.yaml"));
        var e = await again.WaitForEventAsync(ev => ev.GetProperty("path").GetString() == "/in-flight");
        Assert.Equal("allow", e.GetProperty("decision").GetString());
        Assert.Equal(200, e.GetProperty("status").GetInt32());
    }
}
