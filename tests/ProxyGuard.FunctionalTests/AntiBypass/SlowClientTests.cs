using System.Diagnostics;
using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>Slow clients holding half-sent heads neither starve other clients nor stay forever.</summary>
[Collection("proxy")]
public sealed class SlowClientTests
{
    [Fact]
    public async Task Three_hundred_slow_clients_do_not_stop_a_normal_request_and_are_bounded()
    {
        using var dir = new TempDir();
        using var pki = new TestPki();
        await using var origin = await TestOrigin.StartAsync(pki.Issue(["origin.test"]));
        var policy = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{pki.WriteCaPem(dir.Path)}]
            rules:
              - name: origin
                hosts: [origin.test]
                ports: [{origin.HttpsPort}, {origin.HttpPort}]
                action: allow
            """;
        var environment = new Dictionary<string, string>
        {
            ["PROXYGUARD_LIMIT_MAX_CONNECTIONS_PER_CLIENT"] = "100",
            ["PROXYGUARD_LIMIT_CONNECT_HEAD_TIMEOUT"] = "5",
            ["PROXYGUARD_LIMIT_REQUEST_HEADERS_TIMEOUT"] = "5",
        };
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(dir.Path, "proxy"), policy,
            ["--resolve", "origin.test=127.0.0.1"], environment);
        var total = Stopwatch.StartNew();

        // 300 slow clients from three source addresses (100 each, the per-client limit): half stop
        // in the middle of a plain request head, half in the middle of a CONNECT head.
        var slow = new List<RawConnection>();
        try
        {
            foreach (var source in new[] { "127.0.0.3", "127.0.0.4", "127.0.0.5" })
            {
                for (var i = 0; i < 100; i++)
                {
                    var connection = await RawConnection.OpenAsync(proxy.ProxyUrl, IPAddress.Parse(source));
                    slow.Add(connection);
                    await connection.SendAsync(i % 2 == 0
                        ? $"GET http://origin.test:{origin.HttpPort}/echo/slow HTTP/1.1\r\nHost: origin.te"
                        : $"CONNECT origin.test:{origin.HttpsPort} HTTP/1.1\r\nHo");
                }
            }

            // One more from a source at its limit: 429 at once, recorded.
            await using (var extra = await RawConnection.OpenAsync(proxy.ProxyUrl, IPAddress.Parse("127.0.0.3")))
            {
                var refused = await extra.ReadAvailableAsync();
                Assert.Equal([429], RawConnection.Statuses(refused));
                Assert.Equal("too-many-connections", RawConnection.Header(refused, "X-ProxyGuard-Reason"));
            }

            await proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "too-many-connections"
                && e.GetProperty("clientAddress").GetString() == "127.0.0.3");

            // Meanwhile a normal client (127.0.0.1) is served, over TLS interception and plain HTTP.
            var normal = Stopwatch.StartNew();
            using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
            using (var response = await client.GetAsync($"https://origin.test:{origin.HttpsPort}/echo/normal"))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            using (var response = await client.GetAsync($"http://origin.test:{origin.HttpPort}/echo/normal-plain"))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            Assert.True(normal.Elapsed < TimeSpan.FromSeconds(15), $"normal requests took {normal.Elapsed}");

            // The head timeouts close every slow client (5 s limits; allow generous slack).
            var closed = await Task.WhenAll(slow.Select(c => c.ClosedWithinAsync(TimeSpan.FromSeconds(25))));
            Assert.All(closed, Assert.True);
            Assert.DoesNotContain(origin.Received, r => r.Contains("/echo/slow", StringComparison.Ordinal));

            // Their slots are free again.
            await using var again = await RawConnection.OpenAsync(proxy.ProxyUrl, IPAddress.Parse("127.0.0.3"));
            await again.SendAsync($"GET http://origin.test:{origin.HttpPort}/echo/after HTTP/1.1\r\nHost: origin.test:{origin.HttpPort}\r\nConnection: close\r\n\r\n");
            Assert.Equal([200], RawConnection.Statuses(await again.ReadAvailableAsync()));
            Assert.True(total.Elapsed < TimeSpan.FromSeconds(60), $"took {total.Elapsed}");
        }
        finally
        {
            foreach (var connection in slow)
            {
                await connection.DisposeAsync();
            }
        }
    }
}
