using System.Net;
using System.Text;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>
/// Issue 20 class 9: failed client authentications are throttled per source address. After 20 wrong credentials
/// within 60 s, a CONNECT from that address gets 429 auth-throttled without its token being checked (even the right
/// token), other addresses are unaffected, and requests without credentials (the 407 challenge) never count.
/// </summary>
[Collection("proxy")]
public sealed class AuthThrottleTests
{
    private const string AgentToken = "synthetic-throttle-agent-token-01";

    private static string Basic(string id, string token) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{id}:{token}"));

    private static async Task<string> ConnectAsync(ProxyProcess proxy, IPAddress source, string? authorization)
    {
        await using var connection = await RawConnection.OpenAsync(proxy.ProxyUrl, source);
        var auth = authorization is null ? string.Empty : $"Proxy-Authorization: {authorization}\r\n";
        await connection.SendAsync($"CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n{auth}\r\n");
        return await connection.ReadAvailableAsync();
    }

    [Fact]
    public async Task Repeated_wrong_tokens_get_429_auth_throttled_for_that_address_only()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, """
            version: 1
            default: deny
            clients:
              - id: agent-1
                token: env:PG_TEST_THROTTLE_TOKEN
            rules:
              - name: allowed
                hosts: [allowed.example]
                action: allow
            """, environment: new Dictionary<string, string> { ["PG_TEST_THROTTLE_TOKEN"] = AgentToken });
        var attacker = IPAddress.Parse("127.0.0.1");
        var neighbour = IPAddress.Parse("127.0.0.2");
        var challenged = IPAddress.Parse("127.0.0.3");

        // Requests without credentials (a client's first try before the challenge) never count.
        for (var i = 0; i < AuthThrottle.MaxFailures + 5; i++)
        {
            Assert.StartsWith("HTTP/1.1 407 ", await ConnectAsync(proxy, challenged, null), StringComparison.Ordinal);
        }

        Assert.StartsWith("HTTP/1.1 200 ", await ConnectAsync(proxy, challenged, Basic("agent-1", AgentToken)), StringComparison.Ordinal);

        // Guessing: the first MaxFailures wrong tokens get 407, then the address is blocked.
        for (var i = 0; i < AuthThrottle.MaxFailures; i++)
        {
            var head = await ConnectAsync(proxy, attacker, Basic("agent-1", $"guess-{i}"));
            Assert.True(head.StartsWith("HTTP/1.1 407 ", StringComparison.Ordinal), $"attempt {i}: {head}");
        }

        foreach (var credential in new[] { Basic("agent-1", "guess-more"), Basic("agent-1", AgentToken) })
        {
            var throttled = await ConnectAsync(proxy, attacker, credential);
            Assert.StartsWith("HTTP/1.1 429 ", throttled, StringComparison.Ordinal);
            Assert.Equal("auth-throttled", RawConnection.Header(throttled, "X-ProxyGuard-Reason"));
        }

        // Another source address is not affected.
        Assert.StartsWith("HTTP/1.1 200 ", await ConnectAsync(proxy, neighbour, Basic("agent-1", AgentToken)), StringComparison.Ordinal);

        // Plain absolute-form requests from the blocked address are refused too, without a token check.
        await using (var plain = await RawConnection.OpenAsync(proxy.ProxyUrl, attacker))
        {
            await plain.SendAsync($"GET http://allowed.example/ HTTP/1.1\r\nHost: allowed.example\r\nProxy-Authorization: {Basic("agent-1", AgentToken)}\r\n\r\n");
            var response = await plain.ReadAvailableAsync();
            Assert.True(RawConnection.Statuses(response) is [429], response);
        }

        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("reason").GetString() == "auth-throttled");
        Assert.Equal("deny", e.GetProperty("decision").GetString());
    }

    private sealed class FakeClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch.AddYears(56);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Block_ends_after_the_backoff_failures_outside_the_window_do_not_add_up_and_the_table_is_bounded()
    {
        var clock = new FakeClock();
        var throttle = new AuthThrottle(clock);
        var a = IPAddress.Parse("10.0.0.1");

        // Failures spread wider than the window never block.
        for (var i = 0; i < AuthThrottle.MaxFailures * 3; i++)
        {
            Assert.False(throttle.RecordFailure(a));
            clock.Now += AuthThrottle.Window / (AuthThrottle.MaxFailures - 2);
        }

        Assert.False(throttle.IsBlocked(a));

        for (var i = 0; i < AuthThrottle.MaxFailures; i++)
        {
            throttle.RecordFailure(a);
        }

        Assert.True(throttle.IsBlocked(a));
        Assert.True(throttle.IsBlocked(IPAddress.Parse("::ffff:10.0.0.1")));
        Assert.False(throttle.IsBlocked(IPAddress.Parse("10.0.0.2")));
        clock.Now += AuthThrottle.Backoff - TimeSpan.FromSeconds(1);
        Assert.True(throttle.IsBlocked(a));
        clock.Now += TimeSpan.FromSeconds(2);
        Assert.False(throttle.IsBlocked(a));
        Assert.False(throttle.RecordFailure(a));

        // Many addresses: the table never exceeds its bound.
        for (var i = 0; i < AuthThrottle.MaxTracked * 3; i++)
        {
            throttle.RecordFailure(new IPAddress(BitConverter.GetBytes(0x0B000000 + i)));
            Assert.True(throttle.Tracked <= AuthThrottle.MaxTracked);
        }
    }
}
