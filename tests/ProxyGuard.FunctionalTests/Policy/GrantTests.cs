using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Time-boxed grants through a running proxy: the CLI and the admin API create, list and revoke them; a grant allows
/// what the policy's default refused, under its own rule name, until it expires; grants survive a restart; every
/// grant, use, revocation and expiry is an audit event; the sandbox still cannot reach the admin listener.
/// </summary>
[Collection("proxy")]
public sealed class GrantTests : IClassFixture<PolicyOrigin>
{
    private const string Rules = """
        rules:
          - name: other
            hosts: [other.test]
            action: allow
        """;

    private readonly PolicyOrigin _o;

    public GrantTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    private string HttpsPort => _o.Origin.HttpsPort.ToString(CultureInfo.InvariantCulture);

    private static Task<CommandResult> GrantCli(ProxyProcess proxy, params string[] args) =>
        Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "grant", .. args, "--admin", proxy.AdminUrl], proxy.Directory,
            new Dictionary<string, string> { ["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken });

    [Fact]
    public async Task A_grant_allows_a_denied_request_until_it_expires_and_every_step_is_an_event()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Rules);

        // Denied by the default; the explanation names the command an operator can run.
        var plain = await CurlAsync(proxy, "GET", _o.HttpUrl("/echo/grant-plain"));
        Assert.True(plain.Status == 403, plain.ToString());
        Assert.Contains($"proxyguard grant --client '*' --host localhost:{_o.Origin.HttpPort} --methods GET --for 30m --reason", plain.Body, StringComparison.Ordinal);
        var before = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/grant-before"));
        Assert.NotEqual(200, before.Status);
        Assert.False(_o.OriginSaw("grant-before"));

        var granted = await GrantCli(proxy, "--client", "*", "--host", $"localhost:{HttpsPort}", "--methods", "GET", "--for", "8s",
            "--reason", "fetch the release notes");
        Assert.True(granted.ExitCode == 0, granted.All);
        var id = granted.Stdout.Split(' ')[1].TrimEnd(':');
        Assert.StartsWith("g", id, StringComparison.Ordinal);

        var during = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/grant-during"));
        Assert.True(during.Status == 200, during.ToString());
        Assert.True(_o.OriginSaw("grant-during"));
        var used = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/grant-during");
        Assert.Equal("grant:" + id, used.GetProperty("rule").GetString());
        Assert.Equal("grant-allow", used.GetProperty("reason").GetString());
        Assert.Equal("allow", used.GetProperty("decision").GetString());

        // Only the granted methods.
        var post = await CurlAsync(proxy, "POST", _o.HttpsUrl("/echo/grant-post"), data: "x");
        Assert.True(post.Status == 403, post.ToString());
        Assert.False(_o.OriginSaw("grant-post"));

        var list = await GrantCli(proxy, "list");
        Assert.True(list.ExitCode == 0, list.All);
        Assert.Contains(id, list.Stdout, StringComparison.Ordinal);
        Assert.Contains("fetch the release notes", list.Stdout, StringComparison.Ordinal);

        var created = await proxy.WaitForEventAsync(e => Kind(e) == "grant" && Grant(e, "action") == "created");
        Assert.Equal(id, Grant(created, "id"));
        Assert.Equal("cli", Grant(created, "by"));
        Assert.Equal("fetch the release notes", Grant(created, "why"));
        Assert.Equal("*", created.GetProperty("client").GetString());
        Assert.Equal("localhost", created.GetProperty("host").GetString());
        Assert.Equal(_o.Origin.HttpsPort, created.GetProperty("port").GetInt32());
        Assert.Equal("GET", created.GetProperty("method").GetString());
        var until = created.GetProperty("grant").GetProperty("until").GetDateTimeOffset();
        Assert.InRange(until - created.GetProperty("time").GetDateTimeOffset(), TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(9));

        // Expiry: recorded, and the same request is denied again.
        var expired = await proxy.WaitForEventAsync(e => Kind(e) == "grant" && Grant(e, "action") == "expired", 30_000);
        Assert.Equal(id, Grant(expired, "id"));
        Assert.Equal("proxyguard", Grant(expired, "by"));
        var after = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/grant-after"));
        Assert.NotEqual(200, after.Status);
        Assert.False(_o.OriginSaw("grant-after"));
        Assert.Contains("no active grants", (await GrantCli(proxy, "list")).Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Grants_survive_a_restart_are_revoked_bounded_and_never_open_the_admin_listener()
    {
        using var dir = new TempDir();
        string id;
        await using (var first = await _o.StartProxyAsync(dir, Rules))
        {
            using var admin = first.AdminClient();
            using var response = await admin.PostAsJsonAsync("api/grants", new
            {
                client = "*", host = $"localhost:{HttpsPort}", @for = "10m", reason = "survives a restart",
            });
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            var created = await first.WaitForEventAsync(e => Kind(e) == "grant" && Grant(e, "id") == id);
            Assert.Equal("admin-api", Grant(created, "by"));
        }

        var database = Path.Combine(dir.File("proxy"), "data", "grants.db");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(database));
        }

        await using var proxy = await _o.StartProxyAsync(dir, Rules, new Dictionary<string, string> { ["PROXYGUARD_LIMIT_MAX_GRANTS"] = "3" });
        using (var admin = proxy.AdminClient())
        {
            var grants = await admin.GetFromJsonAsync<JsonElement>("api/grants");
            Assert.Contains(grants.GetProperty("grants").EnumerateArray(), g => g.GetProperty("id").GetString() == id);
        }

        var restarted = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/grant-restarted"));
        Assert.True(restarted.Status == 200, restarted.ToString());
        var used = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/grant-restarted");
        Assert.Equal("grant:" + id, used.GetProperty("rule").GetString());

        // A grant for the admin listener itself: the proxy still refuses to reach its own listeners.
        var adminPort = new Uri(proxy.AdminUrl).Port.ToString(CultureInfo.InvariantCulture);
        var self = await GrantCli(proxy, "--client", "*", "--host", "127.0.0.1:" + adminPort, "--for", "1m", "--reason", "operator mistake");
        Assert.True(self.ExitCode == 0, self.All);
        var reachAdmin = await CurlAsync(proxy, "POST", $"http://127.0.0.1:{adminPort}/api/grants", data: "{}");
        Assert.True(reachAdmin.Status == 403, reachAdmin.ToString());
        Assert.Equal("self", reachAdmin.Header("X-ProxyGuard-Reason"));

        // Bounded: PROXYGUARD_LIMIT_MAX_GRANTS=3.
        var third = await GrantCli(proxy, "--client", "*", "--host", "a.example.com", "--for", "1m", "--reason", "third");
        Assert.True(third.ExitCode == 0, third.All);
        var fourth = await GrantCli(proxy, "--client", "*", "--host", "b.example.com", "--for", "1m", "--reason", "fourth");
        Assert.Equal(1, fourth.ExitCode);
        Assert.Contains("too many active grants", fourth.Stderr, StringComparison.Ordinal);

        var revoked = await GrantCli(proxy, "revoke", id);
        Assert.True(revoked.ExitCode == 0, revoked.All);
        var denied = await CurlAsync(proxy, "GET", _o.HttpsUrl("/echo/grant-revoked"));
        Assert.NotEqual(200, denied.Status);
        Assert.False(_o.OriginSaw("grant-revoked"));
        var revokedEvent = await proxy.WaitForEventAsync(e => Kind(e) == "grant" && Grant(e, "action") == "revoked");
        Assert.Equal(id, Grant(revokedEvent, "id"));
        Assert.Equal("cli", Grant(revokedEvent, "by"));
        Assert.Equal("survives a restart", Grant(revokedEvent, "why"));

        // Bad requests are refused with a reason, and without the admin token nothing is granted.
        var tooLong = await GrantCli(proxy, "--client", "*", "--host", "c.example.com", "--for", "30d", "--reason", "too long");
        Assert.Equal(1, tooLong.ExitCode);
        Assert.Contains("7d", tooLong.Stderr, StringComparison.Ordinal);
        using var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl + "/") };
        using var refused = await anonymous.PostAsJsonAsync("api/grants", new { client = "*", host = "d.example.com", @for = "1m", reason = "no token" });
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    private static string? Kind(JsonElement e) => e.GetProperty("kind").GetString();

    private static string? Grant(JsonElement e, string name) =>
        e.TryGetProperty("grant", out var g) && g.ValueKind == JsonValueKind.Object ? g.GetProperty(name).GetString() : null;
}
