using System.Net;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.Policy;

namespace ProxyGuard.FunctionalTests.AntiBypass;

/// <summary>
/// A proxy whose rule allows every address and the name evil.test (pinned to 127.0.0.2) on the trap
/// port, without network.allow_destinations: every private/special destination, in every spelling,
/// is refused with 403 and the trap listener on 127.0.0.2 never sees a connection.
/// </summary>
public sealed class DestinationGuardFixture : IAsyncLifetime
{
    public TempDir Dir { get; } = new();

    public TrapListener Trap { get; private set; } = null!;

    public ProxyProcess Proxy { get; private set; } = null!;

    public static string Policy(int port, string allowDestinations = "[]") => $"""
        version: 1
        default: deny
        network:
          allow_destinations: {allowDestinations}
        content:
          builtin: none
        rules:
          - name: any-address
            hosts: ["0.0.0.0/0", "::/0", evil.test, localhost]
            ports: [{port}]
            action: allow
        """;

    public async Task InitializeAsync()
    {
        Trap = new TrapListener(IPAddress.Parse("127.0.0.2"));
        Proxy = await ProxyProcess.StartAsync(Path.Combine(Dir.Path, "proxy"), Policy(Trap.Port), ["--resolve", "evil.test=127.0.0.2"]);
    }

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Trap.DisposeAsync();
        Dir.Dispose();
    }
}

[Collection("proxy")]
public sealed class DestinationGuardTests : IClassFixture<DestinationGuardFixture>
{
    private readonly DestinationGuardFixture _f;

    public DestinationGuardTests(DestinationGuardFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>Authority spellings (IPv6 in brackets) and what they name.</summary>
    public static TheoryData<string> BlockedSpellings() =>
    [
        "127.0.0.2", "2130706433", "0177.0.0.2", "0x7f000002", "0x7F.0.0.2", "127.2", "127.0.0.2.",
        "[::ffff:127.0.0.2]", "[::FFFF:7f00:2]", "[::127.0.0.2]", "[2002:7f00:2::1]", "[64:ff9b::7f00:2]",
        "evil.test", "EVIL.test.",
        "169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0", "0",
        "224.0.0.1", "239.255.255.250", "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1", "240.0.0.1",
        "[::1]", "[::]", "[fe80::1]", "[fd00:ec2::254]", "[fc00::1]", "[ff02::1]", "[2001:db8::1]",
        "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]", "[::ffff:10.0.0.1]",
    ];

    [Theory]
    [MemberData(nameof(BlockedSpellings))]
    public async Task Connect_to_a_blocked_destination_is_refused_before_tls(string host)
    {
        var authority = $"{host}:{_f.Trap.Port}";
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        var head = await connection.ConnectAsync(authority);

        Assert.StartsWith("HTTP/1.1 403 ", head, StringComparison.Ordinal);
        Assert.Equal("private-destination", RawConnection.Header(head, "X-ProxyGuard-Reason"));
        Assert.True(await connection.ClosedWithinAsync(TimeSpan.FromSeconds(10)));
        var normalized = Normalized(host);
        await _f.Proxy.WaitForEventAsync(e => e.GetProperty("kind").GetString() == "connect" && Is(e, normalized, "private-destination"));
        Assert.Equal(0, _f.Trap.Accepted);
    }

    [Theory]
    [MemberData(nameof(BlockedSpellings))]
    [InlineData("localhost")]
    public async Task Plain_request_to_a_blocked_destination_is_refused_at_dial_time(string host)
    {
        // HTTP/1.0 without Host: the absolute-form target is the only authority, spelled as sent.
        var marker = "/dest-" + Guid.NewGuid().ToString("N");
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        await connection.SendAsync($"GET http://{host}:{_f.Trap.Port}{marker} HTTP/1.0\r\n\r\n");
        var response = await connection.ReadAvailableAsync();

        Assert.Equal([403], RawConnection.Statuses(response));
        Assert.Equal("private-destination", RawConnection.Header(response, "X-ProxyGuard-Reason"));
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.TryGetProperty("path", out var p) && p.GetString() == marker);
        Assert.True(Is(e, Normalized(host), "private-destination"), e.ToString());
        Assert.Equal(0, _f.Trap.Accepted);
    }

    [Fact]
    public async Task An_allowed_name_resolving_to_a_blocked_address_is_refused_inside_the_tunnel_too()
    {
        // A name that needs DNS is judged when dialled: localhost resolves (system resolver) to loopback.
        await using var tunnel = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, $"localhost:{_f.Trap.Port}", "localhost");
        await tunnel.SendAsync($"GET /resolved HTTP/1.1\r\nHost: localhost:{_f.Trap.Port}\r\nConnection: close\r\n\r\n");
        var response = await tunnel.ReadAvailableAsync();

        Assert.Equal([403], RawConnection.Statuses(response));
        Assert.Equal("private-destination", RawConnection.Header(response, "X-ProxyGuard-Reason"));
        await _f.Proxy.WaitForEventAsync(e => e.GetProperty("kind").GetString() == "request" && Is(e, "localhost", "private-destination"));
        Assert.Equal(0, _f.Trap.Accepted);
    }

    [Theory]
    [InlineData("[fe80::1%25eth0]")]
    [InlineData("[fe80::1%eth0]")]
    [InlineData("[::1%1]")]
    public async Task Zone_ids_are_rejected(string host)
    {
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        var head = await connection.ConnectAsync($"{host}:{_f.Trap.Port}");
        Assert.StartsWith("HTTP/1.1 400 ", head, StringComparison.Ordinal);
        Assert.Equal("bad-host", RawConnection.Header(head, "X-ProxyGuard-Reason"));

        await using var plain = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        await plain.SendAsync($"GET http://{host}:{_f.Trap.Port}/zone HTTP/1.0\r\n\r\n");
        var response = await plain.ReadAvailableAsync();
        Assert.Equal([400], RawConnection.Statuses(response));
        Assert.Equal(0, _f.Trap.Accepted);
        await _f.Proxy.WaitForEventAsync(e => e.GetProperty("reason").GetString() == "bad-host");
    }

    [Fact]
    public async Task The_same_destination_is_reachable_once_allow_destinations_covers_it()
    {
        // Positive control: the refusals above are the guard's, not a broken rule or trap.
        await using var trap = new TrapListener(IPAddress.Parse("127.0.0.3"));
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, DestinationGuardFixture.Policy(trap.Port, "[127.0.0.3/32]"));
        await using var connection = await RawConnection.OpenAsync(proxy.ProxyUrl);
        await connection.SendAsync($"GET http://2130706435:{trap.Port}/allowed HTTP/1.0\r\n\r\n");
        _ = await connection.ReadAvailableAsync();
        Assert.True(trap.Accepted >= 1);
    }

    internal static string Normalized(string host) =>
        HostNormalizer.NormalizeOrNull(host.Trim('[', ']')) ?? throw new InvalidOperationException("test spelling does not normalise: " + host);

    internal static bool Is(JsonElement e, string host, string reason) =>
        e.GetProperty("decision").GetString() == "deny"
        && e.GetProperty("host").GetString() == host
        && e.GetProperty("reason").GetString() == reason;
}
