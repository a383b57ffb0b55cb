using ProxyGuard.Policy.Lifecycle;

namespace ProxyGuard.Policy.Tests.Lifecycle;

public sealed class SuggestTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    private static ObservedRequest Req(string method, string url, string decision = "allow", string? client = null, int minute = 0, params (string, string)[] findings)
    {
        Assert.True(TargetUrl.TryParse(url, out var u, out var error), error);
        return new ObservedRequest
        {
            Id = minute + 1,
            Time = T0.AddMinutes(minute),
            Client = client,
            Kind = "request",
            Method = method,
            Scheme = u!.Scheme,
            Host = u.Host,
            Port = u.Port,
            Path = u.RawPath,
            Decision = decision,
            Rule = decision == "allow" ? "r" : "default",
            Reason = decision == "allow" ? "rule-allow" : "no-rule-matched",
            Findings = findings,
        };
    }

    [Theory]
    [InlineData("/repos/acme/widgets/pulls/1234", "/repos/acme/widgets/pulls/*")]
    [InlineData("/v1/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/v1/items/*")]
    [InlineData("/objects/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/objects/*")]
    [InlineData("/packages/ab/cd/requests-2.32.0-py3-none-any.whl", "/packages/ab/cd/requests-*-py3-none-any.whl")]
    [InlineData("/lodash/-/lodash-4.17.21.tgz", "/lodash/-/lodash-*.tgz")]
    [InlineData("/api/v2.1/x", "/api/*/x")]
    [InlineData("/simple/requests/", "/simple/requests/")]
    [InlineData("/v1/users", "/v1/users")]
    [InlineData("/", "/")]
    public void Paths_are_generalised(string path, string glob) => Assert.Equal(glob, PathGeneralizer.Generalize(path));

    [Fact]
    public void Many_siblings_become_one_star()
    {
        var globs = PathGeneralizer.Merge(Enumerable.Range(0, 12).Select(i => $"/simple/pkg{(char)('a' + i)}/").Append("/simple/"));
        Assert.Equal(["/simple/", "/simple/*/"], globs.Order(StringComparer.Ordinal));
        var few = PathGeneralizer.Merge(["/a/x", "/a/y"]);
        Assert.Equal(["/a/x", "/a/y"], few);
    }

    [Fact]
    public void A_wildcard_needs_three_names_and_never_spans_a_public_suffix()
    {
        var keys = PolicySuggester.HostKeys(["a.cdn.example.com", "b.cdn.example.com", "c.cdn.example.com", "api.example.com", "x.example.org", "y.example.org"]);
        Assert.Equal("*.cdn.example.com", keys["a.cdn.example.com"]);
        Assert.Equal("api.example.com", keys["api.example.com"]);
        Assert.Equal("x.example.org", keys["x.example.org"]); // only two names

        // Three names below github.io (a public suffix) or below com: never *.github.io, never *.com.
        var psl = PolicySuggester.HostKeys(["alice.github.io", "bob.github.io", "carol.github.io", "a.com", "b.com", "c.com", "x.b.co.uk", "y.b.co.uk", "z.b.co.uk"]);
        Assert.Equal("x.b.co.uk", psl["x.b.co.uk"]); // *.b.co.uk would be a whole registrable domain
        Assert.Equal("www.b.co.uk", PolicySuggester.HostKeys(["www.b.co.uk", "x.b.co.uk", "y.b.co.uk"])["www.b.co.uk"]);

        // A whole organisation's domain is never a wildcard: four services below acme.test stay four names.
        var org = PolicySuggester.HostKeys(["git.acme.test", "pypi.acme.test", "files.acme.test", "registry.acme.test"]);
        Assert.All(org, kv => Assert.Equal(kv.Key, kv.Value));
        Assert.All(psl, kv => Assert.Equal(kv.Key, kv.Value));
    }

    [Fact]
    public void The_draft_passes_check_allows_what_was_seen_and_its_cases_pass()
    {
        var events = new List<ObservedRequest>
        {
            Req("GET", "https://git.acme.test/acme/widgets.git/info/refs?service=", minute: 1),
            Req("POST", "https://git.acme.test/acme/widgets.git/git-upload-pack", minute: 2),
            Req("GET", "https://pypi.acme.test/simple/requests/", "audit-deny", minute: 3),
            Req("GET", "https://files.acme.test/packages/ab/cd/requests-2.32.0-py3-none-any.whl", "audit-deny", minute: 4),
            Req("GET", "https://files.acme.test/packages/ef/01/urllib3-2.2.1-py3-none-any.whl", "audit-deny", minute: 5),
            Req("GET", "http://registry.acme.test:8080/left-pad", minute: 6),
            Req("GET", "http://registry.acme.test:8080/left-pad/-/left-pad-1.3.0.tgz", minute: 7),
            Req("GET", "https://a.cdn.acme.test/x/1", minute: 8),
            Req("GET", "https://b.cdn.acme.test/x/2", minute: 9),
            Req("GET", "https://c.cdn.acme.test/x/3", minute: 10),
            Req("POST", "https://api.acme.test/v1/chat", minute: 11, findings: [("github-token", "header")]),
            Req("DELETE", "https://evil.acme.test/everything", "deny", minute: 12),
        };
        var s = PolicySuggester.Suggest(events);
        var policy = TestPolicies.Load(s.PolicyYaml);
        Assert.Equal(0, s.Uncovered);
        Assert.Equal(11, s.Used);
        Assert.Contains("1 denied by the proxy (never forwarded)", s.Skipped);

        Allowed(policy, "GET", "https://git.acme.test/acme/widgets.git/info/refs");
        Allowed(policy, "POST", "https://git.acme.test/acme/widgets.git/git-upload-pack");
        Denied(policy, "POST", "https://git.acme.test/acme/widgets.git/info/refs"); // POST was only seen on upload-pack
        Denied(policy, "GET", "https://git.acme.test/acme/other.git/info/refs");
        Allowed(policy, "GET", "https://files.acme.test/packages/ab/cd/requests-2.31.0-py3-none-any.whl"); // another version
        Denied(policy, "GET", "https://files.acme.test/packages/12/34/requests-2.31.0-py3-none-any.whl"); // not a directory that was seen
        Allowed(policy, "GET", "http://registry.acme.test:8080/left-pad/-/left-pad-1.3.1.tgz");
        Denied(policy, "GET", "http://registry.acme.test/left-pad"); // port 80 was never seen
        Allowed(policy, "GET", "https://d.cdn.acme.test/x/4"); // the wildcard
        Denied(policy, "GET", "https://cdn.acme.test/x/4"); // not the apex
        Denied(policy, "DELETE", "https://evil.acme.test/everything");
        Denied(policy, "GET", "https://new-host.acme.test/");

        Assert.Contains("*.cdn.acme.test", s.PolicyYaml, StringComparison.Ordinal);
        Assert.Contains("first 2026-11-30T12:01:00Z", s.PolicyYaml, StringComparison.Ordinal);
        Assert.Single(policy.Secrets);
        Assert.Equal("github-token", policy.Secrets[0].Name);
        Assert.StartsWith("vault:", policy.Secrets[0].ValueReference, StringComparison.Ordinal);
        Assert.True(policy.Secrets[0].Hosts.Matches("api.acme.test"));

        var report = PolicyCaseRunner.RunText(policy, s.CasesYaml, "suggested.cases.yaml");
        Assert.True(report.Success, string.Join("\n", report.Diagnostics.Select(d => d.ToString()).Concat(report.Results.Where(r => !r.Passed).Select(r => r.ToString()))));
        Assert.True(report.Passed >= 10, report.Summary);
    }

    [Fact]
    public void Clients_become_client_entries_and_rule_clients()
    {
        var s = PolicySuggester.Suggest([Req("GET", "https://a.test/x", client: "agent-1"), Req("GET", "https://b.test/y", client: "agent-2")]);
        var policy = TestPolicies.Load(s.PolicyYaml);
        Assert.Equal(["agent-1", "agent-2"], policy.Clients.Select(c => c.Id));
        Assert.Equal(0, s.Uncovered);
        Assert.False(PolicyEvaluator.Evaluate(policy, "agent-2", "GET", Url("https://a.test/x")).Allowed);
        var report = PolicyCaseRunner.RunText(policy, s.CasesYaml, "c.yaml");
        Assert.True(report.Success, report.Summary);
    }

    [Fact]
    public void Hostile_recorded_text_cannot_inject_yaml()
    {
        var s = PolicySuggester.Suggest([Req("GET", "https://a.test/x\"],%20-%20name:%20evil'/y"), Req("GET", "https://a.test/ok")]);
        var policy = TestPolicies.Load(s.PolicyYaml);
        Assert.Single(policy.Rules);
        Assert.Equal(0, s.Uncovered);
    }

    [Fact]
    public void No_traffic_gives_a_valid_empty_policy()
    {
        var s = PolicySuggester.Suggest([]);
        var policy = TestPolicies.Load(s.PolicyYaml);
        Assert.Empty(policy.Rules);
        Assert.True(PolicyCaseRunner.RunText(policy, s.CasesYaml, "c.yaml").Success);
    }

    private static TargetUrl Url(string url) => TargetUrl.TryParse(url, out var u, out _) ? u! : throw new ArgumentException(url);

    private static void Allowed(CompiledPolicy p, string method, string url) =>
        Assert.True(PolicyEvaluator.Evaluate(p, null, method, Url(url)).Allowed, $"{method} {url} should be allowed");

    private static void Denied(CompiledPolicy p, string method, string url) =>
        Assert.False(PolicyEvaluator.Evaluate(p, null, method, Url(url)).Allowed, $"{method} {url} should be denied");
}
