using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>The proxy's own listener and admin port are refused (reason self) even when allow_destinations covers loopback.</summary>
[Collection("proxy")]
public sealed class SelfDestinationTests
{
    [Fact]
    public async Task Own_listener_and_admin_port_are_never_reachable_through_the_proxy()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, Policy("[1]"));
        var proxyPort = new Uri(proxy.ProxyUrl).Port;
        var adminPort = new Uri(proxy.AdminUrl).Port;
        await File.WriteAllTextAsync(proxy.PolicyPath, Policy($"[{proxyPort}, {adminPort}]"));
        using (var admin = proxy.AdminClient())
        {
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.True(reload.IsSuccessStatusCode, await reload.Content.ReadAsStringAsync());
        }

        foreach (var port in new[] { proxyPort, adminPort })
        {
            // CONNECT with literal spellings: refused before TLS.
            foreach (var host in new[] { "127.0.0.1", "2130706433", "127.1", "[::ffff:127.0.0.1]", "[::1]" })
            {
                await using var connection = await RawConnection.OpenAsync(proxy.ProxyUrl);
                var head = await connection.ConnectAsync($"{host}:{port}");
                Assert.StartsWith("HTTP/1.1 403 ", head, StringComparison.Ordinal);
                Assert.Equal("self", RawConnection.Header(head, "X-ProxyGuard-Reason"));
            }

            // Plain absolute-form: refused when dialled.
            await using (var plain = await RawConnection.OpenAsync(proxy.ProxyUrl))
            {
                await plain.SendAsync($"GET http://127.0.0.1:{port}/api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {ProxyProcess.AdminToken}\r\n\r\n");
                var response = await plain.ReadAvailableAsync();
                Assert.Equal([403], RawConnection.Statuses(response));
                Assert.Equal("self", RawConnection.Header(response, "X-ProxyGuard-Reason"));
                Assert.DoesNotContain("\"events\"", response, StringComparison.Ordinal);
            }

            // A name that resolves to loopback, inside an intercepted tunnel: refused when dialled.
            await using (var tunnel = await RawConnection.OpenTunnelAsync(proxy.ProxyUrl, $"localhost:{port}", "localhost"))
            {
                await tunnel.SendAsync($"GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
                var response = await tunnel.ReadAvailableAsync();
                Assert.Equal([403], RawConnection.Statuses(response));
                Assert.Equal("self", RawConnection.Header(response, "X-ProxyGuard-Reason"));
            }

            await proxy.WaitForEventAsync(e => e.GetProperty("port").GetInt32() == port && e.GetProperty("kind").GetString() == "connect"
                && e.GetProperty("reason").GetString() == "self");
            await proxy.WaitForEventAsync(e => e.GetProperty("port").GetInt32() == port && e.GetProperty("kind").GetString() == "request"
                && e.GetProperty("host").GetString() == "localhost" && e.GetProperty("reason").GetString() == "self");
        }
    }

    private static string Policy(string ports) => $"""
        version: 1
        default: deny
        network:
          allow_destinations: [127.0.0.0/8, "::1/128"]
        content:
          builtin: none
        rules:
          - name: loopback-everything
            hosts: [localhost, "0.0.0.0/0", "::/0"]
            ports: {ports}
            action: allow
        """;
}
