using System.Globalization;
using System.Net;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// The policy author's loop through the real binary: a scripted agent (git over smart HTTP, pip- and npm-like GETs
/// with curl) runs through a proxy in audit mode; <c>policy suggest</c> turns the recorded events into a draft that
/// passes <c>policy check</c> and whose cases pass <c>policy test</c>; enforced, the draft allows the same traffic
/// again and denies a new host and a new path; <c>policy replay</c> reports exactly what a narrowed candidate newly
/// denies (exit 1); <c>policy diff</c> names the removed rule.
/// </summary>
[Collection("proxy")]
public sealed class PolicyLifecycleTests : IAsyncLifetime
{
    private static readonly string[] Names = ["git.acme.test", "pypi.acme.test", "files.acme.test", "registry.acme.test", "new.acme.test"];

    private TempDir Dir { get; } = new();

    private TestPki Pki { get; } = new();

    private TestOrigin _origin = null!;
    private string _originCa = null!;

    public async Task InitializeAsync()
    {
        _origin = await TestOrigin.StartAsync(Pki.Issue([.. Names, "localhost"]));
        _originCa = Pki.WriteCaPem(Dir.Path);
        _origin.GitRoot = await CreateRepoAsync();
    }

    public async Task DisposeAsync()
    {
        await _origin.DisposeAsync();
        Pki.Dispose();
        Dir.Dispose();
    }

    private string Https(string host, string path) => $"https://{host}:{_origin.HttpsPort.ToString(CultureInfo.InvariantCulture)}{path}";

    private string Http(string host, string path) => $"http://{host}:{_origin.HttpPort.ToString(CultureInfo.InvariantCulture)}{path}";

    /// <summary>What the environment adds to every policy: loopback origins, their CA, no content scanning.</summary>
    private string Environment => $"""
        network:
          allow_destinations: [127.0.0.0/8]
        content:
          builtin: none
        tls:
          upstream_ca_files: [{_originCa}]

        """;

    [Fact]
    public async Task Audit_then_suggest_then_enforce_allows_the_same_traffic_and_replay_reports_a_narrowed_candidate()
    {
        await using var proxy = await ProxyProcess.StartAsync(Dir.File("proxy"), "version: 1\nmode: audit\ndefault: deny\n" + Environment,
            Names.SelectMany(n => new[] { "--resolve", n + "=127.0.0.1" }));
        var env = await proxy.EnvAsync();
        env["GIT_TERMINAL_PROMPT"] = "0";

        // 1. The agent in audit mode: nothing is blocked, everything is recorded (as audit-deny: there are no rules).
        await RunAgentAsync(env, "audit");
        var recorded = await WaitForEventsAsync(proxy, e => Str(e, "path")?.EndsWith("left-pad-1.3.0.tgz", StringComparison.Ordinal) == true);
        Assert.All(recorded.Where(e => e.GetProperty("kind").GetString() == "request"), e => Assert.Equal("audit-deny", e.GetProperty("decision").GetString()));

        // 2. Suggest from the store directory and from the admin API: the same draft.
        var work = Dir.File("work");
        Directory.CreateDirectory(work);
        var draft = Path.Combine(work, "draft.yaml");
        var suggest = await Cli.RunAsync(work, "policy", "suggest", "--events", proxy.DataDirectory, "-o", draft);
        Assert.True(suggest.ExitCode == 0, suggest.All);
        Assert.True(File.Exists(Path.Combine(work, "draft.cases.yaml")), suggest.All);
        var fromApi = await Cli.RunAsync(work, "policy", "suggest", "--events", proxy.AdminUrl, "--token", ProxyProcess.AdminToken);
        Assert.True(fromApi.ExitCode == 0, fromApi.All);
        var draftText = await File.ReadAllTextAsync(draft);
        Assert.Equal(draftText, fromApi.Stdout);
        Assert.Contains("/git/demo.git/info/refs", draftText, StringComparison.Ordinal);
        Assert.Contains("requests-*-py3-none-any.whl", draftText, StringComparison.Ordinal);
        Assert.Contains("left-pad-*.tgz", draftText, StringComparison.Ordinal);

        var check = await Cli.RunAsync(work, "policy", "check", draft);
        Assert.True(check.ExitCode == 0, check.All);
        var test = await Cli.RunAsync(work, "policy", "test", draft, Path.Combine(work, "draft.cases.yaml"));
        Assert.True(test.ExitCode == 0, test.All);
        Assert.Contains(" 0 failed", test.Stdout, StringComparison.Ordinal);

        // 3. Enforce the draft (plus the environment's sections): the same traffic passes, a new host and a new path do not.
        await File.WriteAllTextAsync(proxy.PolicyPath, draftText + Environment);
        using (var admin = proxy.AdminClient())
        {
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.Equal(HttpStatusCode.OK, reload.StatusCode);
        }

        var enforcedFrom = recorded.Max(e => e.GetProperty("id").GetInt64());
        await RunAgentAsync(env, "enforce");
        var newHost = await CurlStatusAsync(env, "GET", Https("new.acme.test", "/simple/requests/"));
        Assert.Equal(403, newHost);
        var newPath = await CurlStatusAsync(env, "GET", Https("pypi.acme.test", "/admin/users"));
        Assert.Equal(403, newPath);
        var newMethod = await CurlStatusAsync(env, "DELETE", Https("pypi.acme.test", "/simple/requests/"));
        Assert.Equal(403, newMethod);
        var after = await WaitForEventsAsync(proxy, e => e.GetProperty("id").GetInt64() > enforcedFrom && Str(e, "method") == "DELETE");
        var phase2 = after.Where(e => e.GetProperty("id").GetInt64() > enforcedFrom).ToList();
        Assert.Equal(3, phase2.Count(e => e.GetProperty("decision").GetString() == "deny"));

        // 4. Replay: the unchanged draft changes nothing that was allowed (exit 0) ...
        var same = await Cli.RunAsync(work, "policy", "replay", draft, "--events", proxy.DataDirectory);
        Assert.True(same.ExitCode == 0, same.All);
        Assert.Contains(" 0 newly denied", same.Stdout, StringComparison.Ordinal);

        // ... a candidate without the package files host newly denies exactly the package downloads allowed in step 3 (exit 1).
        var candidate = Path.Combine(work, "candidate.yaml");
        await File.WriteAllTextAsync(candidate, $"""
            version: 1
            default: deny
            rules:
              - name: everything-but-files
                hosts: [git.acme.test, pypi.acme.test, registry.acme.test]
                ports: [{_origin.HttpsPort}, {_origin.HttpPort}]
                action: allow

            """ + Environment);
        var replay = await Cli.RunAsync(work, "policy", "replay", candidate, "--events", proxy.DataDirectory, "--format", "json", "--examples", "100");
        Assert.True(replay.ExitCode == 1, replay.All);
        using var json = JsonDocument.Parse(replay.Stdout);
        var denied = json.RootElement.GetProperty("groups").EnumerateArray()
            .Where(g => g.GetProperty("change").GetString() == "newly-denied")
            .SelectMany(g => g.GetProperty("examples").EnumerateArray().Select(x => x.GetProperty("id").GetInt64()))
            .Order().ToList();
        var expected = phase2.Where(e => e.GetProperty("host").GetString() == "files.acme.test" && e.GetProperty("decision").GetString() == "allow")
            .Select(e => e.GetProperty("id").GetInt64()).Order().ToList();
        Assert.Equal(2, expected.Count(id => phase2.Single(e => e.GetProperty("id").GetInt64() == id).GetProperty("kind").GetString() == "request"));
        Assert.Equal(expected, denied);
        Assert.Equal(expected.Count, json.RootElement.GetProperty("newlyDenied").GetInt64());

        var markdown = await Cli.RunAsync(work, "policy", "replay", candidate, "--events", proxy.DataDirectory, "--format", "markdown");
        Assert.Equal(1, markdown.ExitCode);
        Assert.StartsWith("### Policy replay", markdown.Stdout, StringComparison.Ordinal);
        Assert.Contains("| newly denied |", markdown.Stdout, StringComparison.Ordinal);

        // 5. Diff: the files rule is removed, the new rule is added.
        var diff = await Cli.RunAsync(work, "policy", "diff", draft, candidate);
        Assert.True(diff.ExitCode == 0, diff.All);
        Assert.Contains("removed  rule files-acme-test-read", diff.Stdout, StringComparison.Ordinal);
        Assert.Contains("added    rule everything-but-files", diff.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Replay_and_suggest_refuse_what_is_not_an_event_store()
    {
        var empty = Dir.File("empty");
        Directory.CreateDirectory(empty);
        var policy = Path.Combine(empty, "p.yaml");
        await File.WriteAllTextAsync(policy, "version: 1\n");
        var replay = await Cli.RunAsync(empty, "policy", "replay", policy, "--events", empty);
        Assert.Equal(1, replay.ExitCode);
        Assert.Contains("no events.db", replay.Stderr, StringComparison.Ordinal);
        var usage = await Cli.RunAsync(empty, "policy", "replay", policy, "--events", empty, "--format", "yaml");
        Assert.Equal(2, usage.ExitCode);
        var missing = await Cli.RunAsync(empty, "policy", "suggest");
        Assert.Equal(2, missing.ExitCode);
    }

    /// <summary>git clone over smart HTTP, pip-like index + files, npm-like metadata + tarball over plain HTTP.</summary>
    private async Task RunAgentAsync(Dictionary<string, string> env, string round)
    {
        var clone = await Cli.RunProgramAsync("git", ["clone", "-q", Https("git.acme.test", "/git/demo.git"), Dir.File("clone-" + round)], Dir.Path, env);
        Assert.True(clone.ExitCode == 0, clone.All);
        Assert.Equal("hello\n", await File.ReadAllTextAsync(Path.Combine(Dir.File("clone-" + round), "README")));
        foreach (var url in new[]
                 {
                     Https("pypi.acme.test", "/simple/requests/"),
                     Https("files.acme.test", "/packages/ab/cd/requests-2.32.0-py3-none-any.whl"),
                     Https("files.acme.test", "/packages/ef/01/urllib3-2.2.1-py3-none-any.whl"),
                     Http("registry.acme.test", "/left-pad"),
                     Http("registry.acme.test", "/left-pad/-/left-pad-1.3.0.tgz"),
                 })
        {
            // The origin answers 404 for file-like names (no such file), 200 otherwise: either way the request reached it.
            var before = _origin.Received.Count;
            var status = await CurlStatusAsync(env, "GET", url);
            Assert.True(status is 200 or 404 && _origin.Received.Count > before, $"{round}: GET {url} answered {status}");
        }
    }

    private async Task<int> CurlStatusAsync(Dictionary<string, string> env, string method, string url)
    {
        var result = await Cli.RunProgramAsync("curl", ["-sS", "-o", "/dev/null", "-X", method, "-w", "%{http_code} %{http_connect}", "--max-time", "60", url], Dir.Path, env);
        var codes = result.Stdout.Trim().Split(' ');
        var status = int.Parse(codes[0], CultureInfo.InvariantCulture);
        return status == 0 ? int.Parse(codes[1], CultureInfo.InvariantCulture) : status;
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static async Task<List<JsonElement>> WaitForEventsAsync(ProxyProcess proxy, Func<JsonElement, bool> last)
    {
        for (var i = 0; i < 100; i++)
        {
            var events = await proxy.EventsAsync();
            if (events.Any(last))
            {
                return events;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("the expected event was not recorded");
    }

    private async Task<string> CreateRepoAsync()
    {
        var root = Dir.File("repos");
        var repo = Path.Combine(root, "demo.git");
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["init", "-q", "--bare", "-b", "main", repo], Dir.Path, null)).ExitCode);
        var seed = Dir.File("seed");
        await Cli.RunProgramAsync("git", ["init", "-q", "-b", "main", seed], Dir.Path, null);
        await File.WriteAllTextAsync(Path.Combine(seed, "README"), "hello\n");
        var gitEnv = new Dictionary<string, string>
        {
            ["GIT_AUTHOR_NAME"] = "t", ["GIT_AUTHOR_EMAIL"] = "t@example.invalid", ["GIT_COMMITTER_NAME"] = "t", ["GIT_COMMITTER_EMAIL"] = "t@example.invalid",
        };
        await Cli.RunProgramAsync("git", ["-C", seed, "add", "."], Dir.Path, gitEnv);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", seed, "commit", "-qm", "init"], Dir.Path, gitEnv)).ExitCode);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", seed, "push", "-q", repo, "main"], Dir.Path, gitEnv)).ExitCode);
        return root;
    }
}
