using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>The audit fixture's policy with two authenticated clients.</summary>
public sealed class ClientsFixture : AuditFixture
{
    public const string TokenA = "synthetic-agent-a-token-1111";
    public const string TokenB = "synthetic-agent-b-token-2222";

    protected override string Content => base.Content + """
        clients:
          - id: agent-a
            token: env:PG_AGENT_A_TOKEN
          - id: agent-b
            token: env:PG_AGENT_B_TOKEN

        """;

    protected override IDictionary<string, string>? ProxyEnvironment =>
        new Dictionary<string, string>(Environment) { ["PG_AGENT_A_TOKEN"] = TokenA, ["PG_AGENT_B_TOKEN"] = TokenB };
}

/// <summary><c>proxyguard events</c> against a running proxy: JSON lines, the table, filters, <c>--follow</c>.</summary>
[Collection("proxy")]
public sealed class EventsCommandTests : IClassFixture<ClientsFixture>
{
    private readonly ClientsFixture _f;

    public EventsCommandTests(ClientsFixture fixture)
    {
        _f = fixture;
    }

    private Dictionary<string, string> TokenEnv => new() { ["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken };

    [Fact]
    public async Task Json_lines_table_and_filters()
    {
        var marker = Traffic.Marker();
        await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/cli/{marker}/1", 200);
        await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/cli/{marker}/2", 200);
        await CurlAsync("agent-b", ClientsFixture.TokenB, $"/echo/cli/{marker}/3", 200);
        await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/blocked/{marker}", 403);
        await _f.Proxy.WaitForEventAsync(e => AdminApiTests.Path(e) == $"/echo/blocked/{marker}");
        await _f.Proxy.WaitForEventAsync(e => AdminApiTests.Path(e) == $"/echo/cli/{marker}/3");
        var api = await _f.Proxy.EventsAsync();

        // --json: one JSON object per line, every event, oldest first.
        var all = JsonLines(await EventsAsync("--json"));
        Assert.Equal(api.Select(Id), all.Select(Id));
        Assert.Equal(4, all.Count(e => AdminApiTests.Path(e).Contains(marker, StringComparison.Ordinal)));

        // --client
        var a = JsonLines(await EventsAsync("--json", "--client", "agent-a"));
        Assert.All(a, e => Assert.Equal("agent-a", e.GetProperty("client").GetString()));
        Assert.Equal(3, a.Count(e => AdminApiTests.Path(e).Contains(marker, StringComparison.Ordinal)));
        Assert.Contains(a, e => e.GetProperty("kind").GetString() == "connect");
        Assert.Equal(api.Where(e => e.GetProperty("client").ValueKind == JsonValueKind.String && e.GetProperty("client").GetString() == "agent-a").Select(Id), a.Select(Id));

        // --decision
        var denies = JsonLines(await EventsAsync("--json", "--decision", "deny"));
        Assert.All(denies, e => Assert.Equal("deny", e.GetProperty("decision").GetString()));
        Assert.Contains(denies, e => AdminApiTests.Path(e) == $"/echo/blocked/{marker}");

        // --host, and filters combined
        var b = JsonLines(await EventsAsync("--json", "--host", "localhost", "--client", "agent-b"));
        Assert.All(b, e =>
        {
            Assert.Equal("localhost", e.GetProperty("host").GetString());
            Assert.Equal("agent-b", e.GetProperty("client").GetString());
        });
        Assert.Single(b, e => AdminApiTests.Path(e) == $"/echo/cli/{marker}/3");
        Assert.Empty(JsonLines(await EventsAsync("--json", "--host", "origin.test", "--client", "agent-b")));

        // --after
        var cut = all[all.Count / 2].GetProperty("id").GetInt64();
        var later = JsonLines(await EventsAsync("--json", "--after", cut.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(all.Where(e => Id(e) > cut).Select(Id), later.Select(Id));

        // The table: a header, then one row per event with client, decision and target.
        var table = (await EventsAsync("--client", "agent-b")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^\s*ID\s+TIME \(UTC\)\s+DECISION\s+KIND\s+CLIENT\s+STATUS\s+TARGET", table[0]);
        Assert.Equal(JsonLines(await EventsAsync("--json", "--client", "agent-b")).Count, table.Length - 1);
        var row = Assert.Single(table, l => l.Contains($"/echo/cli/{marker}/3", StringComparison.Ordinal));
        Assert.Matches($@"^\s*\d+\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+allow\s+request\s+agent-b\s+200\s+GET localhost:{_f.Origin.HttpsPort}/echo/cli/{marker}/3\s+origin", row);
        Assert.DoesNotContain(table, l => l.TrimStart().StartsWith('{'));
    }

    [Fact]
    public async Task Admin_address_works_in_every_form_run_takes_and_as_a_url()
    {
        var url = new Uri(_f.Proxy.AdminUrl);
        var expected = (await EventsAsync("--json")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        foreach (var form in new[] { $"127.0.0.1:{url.Port}", $"localhost:{url.Port}", $"http://127.0.0.1:{url.Port}", $"http://127.0.0.1:{url.Port}/" })
        {
            var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", form, "--json"], _f.Dir.Path, TokenEnv, TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 0, $"--admin {form}: {result.All}");
            Assert.DoesNotContain("   at ", result.All, StringComparison.Ordinal);
            Assert.True(JsonLines(result.Stdout).Count >= expected, $"--admin {form}: {result.Stdout}");
        }
    }

    [Fact]
    public async Task An_invalid_decision_is_refused_with_the_valid_values()
    {
        var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--decision", "denied"],
            _f.Dir.Path, TokenEnv, TimeSpan.FromSeconds(60));
        Assert.Equal(2, result.ExitCode);
        Assert.Empty(result.Stdout);
        Assert.Contains("'denied'", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("allow, deny, audit-deny", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("did you mean 'deny'?", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("proxyguard: --decision", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_empty_result_says_so_and_json_stays_empty()
    {
        var table = await EventsAsync("--host", "nothing-here.invalid");
        Assert.StartsWith("no events match --host nothing-here.invalid", table, StringComparison.Ordinal);
        Assert.Single(table.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(string.Empty, await EventsAsync("--host", "nothing-here.invalid", "--json"));
    }

    [Fact]
    public async Task Table_columns_line_up_and_colour_is_for_terminals_only()
    {
        var marker = Traffic.Marker();
        await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/cli/{marker}/a", 200);
        await CurlAsync("agent-b", ClientsFixture.TokenB, $"/echo/blocked/{marker}/a-much-longer-path-than-the-others/xxxxxxxxxxxxxxxx", 403);
        await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/cli/{marker}/b", 200);
        await _f.Proxy.WaitForEventAsync(e => AdminApiTests.Path(e) == $"/echo/cli/{marker}/b");

        var lines = (await EventsAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain('\e', string.Concat(lines)); // piped: no colour
        var header = lines[0];
        var rows = lines.Skip(1).ToList();
        Assert.True(rows.Count >= 3, string.Join('\n', lines));

        // Every column starts where its header starts, also after a target longer than the column's cap.
        foreach (var column in new[] { "DECISION", "KIND", "CLIENT", "TARGET", "RULE", "REASON" })
        {
            var at = header.IndexOf(column, StringComparison.Ordinal);
            Assert.All(rows, r =>
            {
                Assert.True(r.Length > at && r[at] != ' ' && r[at - 1] == ' ', $"{column} at {at}:\n{header}\n{r}");
            });
        }

        var status = header.IndexOf("STATUS", StringComparison.Ordinal) + "STATUS".Length - 1;
        Assert.All(rows, r => Assert.True(char.IsAsciiDigit(r[status]) || r[status] == '-', $"STATUS right-aligned at {status}:\n{header}\n{r}"));

        // On a terminal (script(1) gives it one) the decision is coloured; NO_COLOR turns that off.
        if (Cli.Exists("script"))
        {
            var command = $"dotnet '{ProxyProcess.DllPath}' events --admin {_f.Proxy.AdminUrl} --client agent-b";
            var env = new Dictionary<string, string>(TokenEnv) { ["TERM"] = "xterm" };
            var tty = await Cli.RunProgramAsync("script", ["-qec", command, "/dev/null"], _f.Dir.Path, env, TimeSpan.FromSeconds(60));
            Assert.True(tty.ExitCode == 0, tty.All);
            Assert.Contains("\e[31mdeny\e[0m", tty.Stdout, StringComparison.Ordinal);
            env["NO_COLOR"] = "1";
            var plain = await Cli.RunProgramAsync("script", ["-qec", command, "/dev/null"], _f.Dir.Path, env, TimeSpan.FromSeconds(60));
            Assert.DoesNotContain("\e[3", plain.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Since_takes_a_duration_or_a_time()
    {
        var marker = Traffic.Marker();
        await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/since/{marker}", 200);
        await _f.Proxy.WaitForEventAsync(e => AdminApiTests.Path(e) == $"/echo/since/{marker}");
        var all = JsonLines(await EventsAsync("--json"));

        Assert.Equal(all.Select(Id), JsonLines(await EventsAsync("--json", "--since", "24h")).Select(Id));
        Assert.Empty(JsonLines(await EventsAsync("--json", "--since", "2999-01-01T00:00:00Z")));
        Assert.StartsWith("no events match --since 2999-01-01 00:00:00Z", await EventsAsync("--since", "2999-01-01T00:00:00Z"), StringComparison.Ordinal);

        var pivot = all[all.Count / 2].GetProperty("time").GetDateTimeOffset();
        var since = JsonLines(await EventsAsync("--json", "--since", pivot.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(all.Where(e => e.GetProperty("time").GetDateTimeOffset() >= pivot).Select(Id), since.Select(Id));
    }

    [Fact]
    public async Task A_missing_token_says_where_it_looked()
    {
        var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--data-dir", "no-such-dir"],
            _f.Dir.Path, null, TimeSpan.FromSeconds(60));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("401", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("PROXYGUARD_ADMIN_TOKEN", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(_f.Dir.Path, "no-such-dir", "admin.token"), result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_or_wrong_token_fails_with_exit_1()
    {
        var wrong = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--token", "wrong-token"],
            _f.Dir.Path, null, TimeSpan.FromSeconds(60));
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("401", wrong.Stderr, StringComparison.Ordinal);
        Assert.Empty(wrong.Stdout);

        var explicitToken = await Cli.RunProgramAsync("dotnet",
            [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--token", ProxyProcess.AdminToken, "--json"],
            _f.Dir.Path, null, TimeSpan.FromSeconds(60));
        Assert.True(explicitToken.ExitCode == 0, explicitToken.All);
    }

    [Fact]
    public async Task Follow_prints_new_events_as_they_are_recorded()
    {
        var start = (await _f.Proxy.EventsAsync()).Select(Id).DefaultIfEmpty(0).Max();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = _f.Dir.Path,
        };
        foreach (var arg in new[] { ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--follow", "--json", "--after", start.ToString(System.Globalization.CultureInfo.InvariantCulture), "--client", "agent-a" })
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken;
        var lines = new ConcurrentQueue<string>();
        using var follower = new Process { StartInfo = psi };
        follower.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lines.Enqueue(e.Data);
            }
        };
        follower.Start();
        follower.BeginOutputReadLine();
        try
        {
            // Events recorded after the follower started.
            await Task.Delay(1500);
            if (follower.HasExited)
            {
                Assert.Fail("events --follow exited: " + await follower.StandardError.ReadToEndAsync());
            }
            var markers = Enumerable.Range(0, 3).Select(_ => Traffic.Marker()).ToList();
            foreach (var marker in markers)
            {
                await CurlAsync("agent-a", ClientsFixture.TokenA, $"/echo/follow/{marker}", 200);
            }

            await CurlAsync("agent-b", ClientsFixture.TokenB, $"/echo/follow/not-mine-{markers[0]}", 200);

            await Traffic.WaitUntilAsync(
                () => Task.FromResult(markers.All(m => lines.Any(l => l.Contains($"/echo/follow/{m}", StringComparison.Ordinal)))),
                "the follower to print the new events", 30);

            var printed = lines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
            Assert.All(printed, e =>
            {
                Assert.True(Id(e) > start);
                Assert.Equal("agent-a", e.GetProperty("client").GetString());
            });
            Assert.Equal(printed.Select(Id).Order(), printed.Select(Id));
            Assert.Equal(printed.Count, printed.Select(Id).Distinct().Count());
            foreach (var marker in markers)
            {
                Assert.Single(printed, e => AdminApiTests.Path(e) == $"/echo/follow/{marker}");
            }

            Assert.False(follower.HasExited);
        }
        finally
        {
            if (!follower.HasExited)
            {
                follower.Kill(); // by its own handle (its PID), nothing else
                await follower.WaitForExitAsync();
            }
        }
    }

    private async Task CurlAsync(string client, string token, string path, int expectedStatus)
    {
        var result = await Cli.RunProgramAsync("curl",
            ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--proxy-user", $"{client}:{token}", _f.HttpsUrl(path)], _f.Dir.Path, _f.Env);
        Assert.True(result.Stdout == expectedStatus.ToString(System.Globalization.CultureInfo.InvariantCulture), $"curl {path}: {result.All}");
    }

    [Fact]
    public async Task Works_in_a_shell_that_has_the_sandbox_proxy_variables()
    {
        // After `eval "$(proxyguard env)"` HTTP_PROXY points at the proxy, which refuses to reach its
        // own admin port: the events command must talk to the admin API directly.
        var env = new Dictionary<string, string>(_f.Env) { ["PROXYGUARD_ADMIN_TOKEN"] = ProxyProcess.AdminToken };
        Assert.StartsWith("http://", env["HTTP_PROXY"], StringComparison.Ordinal);
        var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, "--json"],
            _f.Dir.Path, env, TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Equal((await _f.Proxy.EventsAsync()).Count, JsonLines(result.Stdout).Count);
    }

    private async Task<string> EventsAsync(params string[] args)
    {
        var result = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "events", "--admin", _f.Proxy.AdminUrl, .. args],
            _f.Dir.Path, TokenEnv, TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Empty(result.Stderr);
        return result.Stdout;
    }

    private static List<JsonElement> JsonLines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
            return doc.RootElement.Clone();
        }).ToList();

    private static long Id(JsonElement e) => e.GetProperty("id").GetInt64();
}
