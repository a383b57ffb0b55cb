using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>
/// Issue 20 class 1: with allow_destinations covering everything, the proxy's own listeners are still never
/// dialled, however the destination is spelled: the unspecified address (0.0.0.0, 0, [::], ::ffff:0.0.0.0),
/// short forms, pinned names, names resolved at dial time, an interface address, tcp and pass-through tunnels.
/// </summary>
[Collection("proxy")]
public sealed class SelfGuardUnspecifiedTests
{
    [Fact]
    public async Task Unspecified_and_interface_spellings_of_the_own_listeners_are_refused_with_reason_self()
    {
        using var dir = new TempDir();
        string[] pins = ["--resolve", "zero.test=0.0.0.0", "--resolve", "pass.test=0.0.0.0"];
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, Policy("[1]"), pins);
        var proxyPort = new Uri(proxy.ProxyUrl).Port;
        var adminPort = new Uri(proxy.AdminUrl).Port;
        await File.WriteAllTextAsync(proxy.PolicyPath, Policy($"[{proxyPort}, {adminPort}]"));
        using (var admin = proxy.AdminClient())
        {
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.True(reload.IsSuccessStatusCode, await reload.Content.ReadAsStringAsync());
        }

        var hosts = new List<string> { "0.0.0.0", "0", "0.0", "0x0", "00", "[::]", "[::ffff:0.0.0.0]", "127.1", "zero.test", "pass.test" };
        if (InterfaceAddress() is { } nic)
        {
            hosts.Add(nic);
        }

        foreach (var port in new[] { proxyPort, adminPort })
        {
            foreach (var host in hosts)
            {
                await using var connection = await RawConnection.OpenAsync(proxy.ProxyUrl);
                var head = await connection.ConnectAsync($"{host}:{port}");
                Assert.True(head.StartsWith("HTTP/1.1 403 ", StringComparison.Ordinal), $"{host}:{port} -> {head}");
                Assert.Equal("self", RawConnection.Header(head, "X-ProxyGuard-Reason"));
            }

            // Plain absolute-form through the unspecified address: refused when dialled, /metrics never read.
            foreach (var host in new[] { "0.0.0.0", "zero.test" })
            {
                await using var plain = await RawConnection.OpenAsync(proxy.ProxyUrl);
                await plain.SendAsync($"GET http://{host}:{port}/metrics HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
                var response = await plain.ReadAvailableAsync();
                Assert.True(RawConnection.Statuses(response) is [403], $"{host}:{port} -> {response}");
                Assert.Equal("self", RawConnection.Header(response, "X-ProxyGuard-Reason"));
                Assert.DoesNotContain("proxyguard_", response, StringComparison.Ordinal);
            }

            // "0" and IPv6 literals in absolute-form are refused by the HTTP parser (400) or the guard: never dialled.
            foreach (var host in new[] { "0", "[::]", "[::ffff:0.0.0.0]" })
            {
                await using var zero = await RawConnection.OpenAsync(proxy.ProxyUrl);
                await zero.SendAsync($"GET http://{host}:{port}/metrics HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
                var response = await zero.ReadAvailableAsync();
                Assert.True(RawConnection.Statuses(response) is [400] or [403], response);
                Assert.DoesNotContain("proxyguard_", response, StringComparison.Ordinal);
            }

            // A protocol: tcp tunnel to a name resolved at dial time: refused when dialled, nothing relayed.
            await using (var tcp = await RawConnection.OpenAsync(proxy.ProxyUrl))
            {
                var head = await tcp.ConnectAsync($"localhost:{port}");
                Assert.StartsWith("HTTP/1.1 200 ", head, StringComparison.Ordinal);
                await tcp.SendAsync($"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
                var relayed = await tcp.ReadAvailableAsync();
                Assert.DoesNotContain("HTTP/1.1 200", relayed, StringComparison.Ordinal);
                Assert.DoesNotContain("proxyguard_", relayed, StringComparison.Ordinal);
            }

            await proxy.WaitForEventAsync(e => e.GetProperty("port").GetInt32() == port && e.GetProperty("host").GetString() == "localhost"
                && e.GetProperty("reason").GetString() == "self");
        }

        var events = await proxy.EventsAsync();
        Assert.DoesNotContain(events, e => e.GetProperty("decision").GetString() == "allow"
            && (e.GetProperty("port").GetInt32() == proxyPort || e.GetProperty("port").GetInt32() == adminPort)
            && e.GetProperty("kind").GetString() == "request");
    }

    private static string? InterfaceAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(u => u.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a))?.ToString();

    private static string Policy(string ports) => $"""
        version: 1
        default: deny
        network:
          allow_destinations: [0.0.0.0/0, "::/0"]
        content:
          builtin: none
        rules:
          - name: tcp-self
            hosts: [localhost]
            protocol: tcp
            ports: {ports}
            action: allow
          - name: pass-self
            hosts: [pass.test]
            inspect: false
            ports: {ports}
            action: allow
          - name: everything
            hosts: ["0.0.0.0/0", "::/0", zero.test]
            ports: {ports}
            action: allow
        """;
}
