using ProxyGuard.Policy.Lifecycle;

namespace ProxyGuard.Policy.Tests.Lifecycle;

public sealed class DiffTests
{
    private const string Base = """
        version: 1
        rules:
          - name: api-read
            hosts: [api.example.com]
            methods: [GET]
            paths: ["/repos/acme/**"]
            action: allow
          - name: cdn
            hosts: ["*.cdn.example.com"]
            action: allow
          - name: no-gists
            hosts: [gist.example.com]
            action: deny
        secrets:
          - name: token
            value: env:TOKEN
            hosts: [api.example.com]
            in: [headers]
        """;

    /// <summary>(name, a sed-like replacement on Base (old -> new text), the expected "change subject: details" lines).</summary>
    public static TheoryData<string, string, string, string[]> Table => new()
    {
        { "identical", "", "", [] },
        { "widened wildcard", "\"*.cdn.example.com\"", "\"*.example.com\"", ["widened rule cdn: +hosts *.example.com"] },
        { "narrowed wildcard", "\"*.cdn.example.com\"", "\"*.eu.cdn.example.com\"", ["narrowed rule cdn: -hosts *.cdn.example.com"] },
        {
            "removed rule",
            "  - name: no-gists\n    hosts: [gist.example.com]\n    action: deny\n", "",
            ["removed rule no-gists: deny hosts gist.example.com; methods any; paths any"]
        },
        {
            "added rule",
            "secrets:", "  - name: pypi\n    hosts: [pypi.org]\n    action: allow\nsecrets:",
            ["added rule pypi: allow hosts pypi.org; methods any; paths any"]
        },
        { "method added", "methods: [GET]", "methods: [GET, POST]", ["widened rule api-read: +methods POST"] },
        { "methods dropped (any method)", "    methods: [GET]\n", "", ["widened rule api-read: +methods (any, was GET)"] },
        { "path widened", "\"/repos/acme/**\"", "\"/repos/**\"", ["widened rule api-read: +paths /repos/**"] },
        { "path narrowed", "\"/repos/acme/**\"", "\"/repos/acme/widgets/*\"", ["narrowed rule api-read: -paths /repos/acme/**"] },
        { "deny rule widened takes access away", "hosts: [gist.example.com]", "hosts: [gist.example.com, paste.example.com]", ["narrowed rule no-gists: +hosts paste.example.com"] },
        { "default", "version: 1\n", "version: 1\ndefault: allow\n", ["widened default: deny -> allow"] },
        { "secret rebound", "    hosts: [api.example.com]\n    in: [headers]", "    hosts: [api.example.com, evil.example.net]\n    in: [headers]", ["rebound secret token: +hosts evil.example.net"] },
        { "secret reference", "env:TOKEN", "env:OTHER_TOKEN", ["rebound secret token: value env:TOKEN -> env:OTHER_TOKEN"] },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Semantic_differences(string name, string from, string to, string[] expected)
    {
        var newText = from.Length == 0 ? Base : Base.Replace(from, to, StringComparison.Ordinal);
        Assert.True(from.Length == 0 || newText != Base, $"{name}: the replacement did not apply");
        var changes = PolicyDiff.Compare(TestPolicies.Load(Base), TestPolicies.Load(newText));
        var lines = changes.Select(c => $"{c.Change} {c.Subject}: {string.Join(" / ", c.Details)}").ToArray();
        Assert.Equal(expected, lines);
    }

    [Fact]
    public void Rule_order_is_a_change()
    {
        var swapped = TestPolicies.Load("""
            version: 1
            rules:
              - name: b
                hosts: [b.example.com]
                action: allow
              - name: a
                hosts: [a.example.com]
                action: allow
            """);
        var original = TestPolicies.Load("""
            version: 1
            rules:
              - name: a
                hosts: [a.example.com]
                action: allow
              - name: b
                hosts: [b.example.com]
                action: allow
            """);
        var change = Assert.Single(PolicyDiff.Compare(original, swapped));
        Assert.Equal("reordered", change.Change);
    }

    [Theory]
    [InlineData("*.example.com", "api.example.com", true)]
    [InlineData("*.example.com", "*.api.example.com", true)]
    [InlineData("*.api.example.com", "*.example.com", false)]
    [InlineData("*.example.com", "example.com", false)]
    [InlineData("10.0.0.0/8", "10.1.0.0/16", true)]
    [InlineData("10.1.0.0/16", "10.0.0.0/8", false)]
    public void Host_coverage(string outer, string inner, bool covers) => Assert.Equal(covers, PolicyDiff.HostCovers(outer, inner));

    [Theory]
    [InlineData("/repos/**", "/repos/acme/*", true)]
    [InlineData("/repos/*/x", "/repos/acme/x", true)]
    [InlineData("/repos/acme/*", "/repos/**", false)]
    [InlineData("/**", "/a/**", true)]
    [InlineData("/a/*.whl", "/a/x-*.whl", true)]
    [InlineData("/a/x-*.whl", "/a/*.whl", false)]
    public void Glob_coverage(string outer, string inner, bool covers) => Assert.Equal(covers, PolicyDiff.GlobCovers(outer, inner));
}
