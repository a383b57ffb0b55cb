using ProxyGuard.Policy.Lifecycle;

namespace ProxyGuard.Policy.Tests.Lifecycle;

public sealed class ReplayTests
{
    private static readonly CompiledPolicy Narrowed = TestPolicies.Load("""
        version: 1
        rules:
          - name: pypi
            hosts: [pypi.org]
            methods: [GET]
            paths: ["/simple/**"]
            action: allow
        """);

    private static readonly CompiledPolicy Wide = TestPolicies.Load("""
        version: 1
        rules:
          - name: pypi-all
            hosts: [pypi.org, files.pythonhosted.org]
            action: allow
        """);

    private static ObservedRequest Event(long id, string method, string host, string path, string decision, string reason, string kind = "request") => new()
    {
        Id = id,
        Kind = kind,
        Method = method,
        Scheme = "https",
        Host = host,
        Port = 443,
        Path = path,
        Decision = decision,
        Rule = decision == "allow" ? "old" : "default",
        Reason = reason,
    };

    private static readonly ObservedRequest[] Recorded =
    [
        Event(1, "GET", "pypi.org", "/simple/requests/", "allow", "rule-allow"),
        Event(2, "GET", "files.pythonhosted.org", "/packages/x.whl", "allow", "rule-allow"), // newly denied (host)
        Event(3, "POST", "pypi.org", "/simple/requests/", "allow", "rule-allow"), // newly denied (method)
        Event(4, "GET", "pypi.org", "/simple/?q=", "audit-deny", "no-rule-matched"), // newly allowed
        Event(5, "GET", "evil.example", "/", "deny", "no-rule-matched"), // unchanged
        Event(6, "GET", "pypi.org", "/simple/x", "deny", "content-finding"), // passed the rules then: unchanged
        Event(7, "GET", "pypi.org", "/simple/x", "deny", "bad-request"), // never reached the rules: not comparable
        Event(8, "CONNECT", "files.pythonhosted.org", "/", "allow", "rule-allow", "connect"), // newly denied CONNECT
    ];

    [Fact]
    public void Against_the_recorded_decisions()
    {
        var replay = new PolicyReplay(Narrowed);
        foreach (var e in Recorded)
        {
            replay.Add(e);
        }

        var r = replay.Report();
        Assert.Equal(7, r.Replayed);
        Assert.Equal(1, r.NotComparable);
        Assert.Equal(3, r.NewlyDenied);
        Assert.Equal(1, r.NewlyAllowed);
        Assert.Equal(3, r.Unchanged);
        Assert.Equal([2L, 3L, 8L], r.Groups.Where(g => g.Change == ReplayChange.NewlyDenied).SelectMany(g => g.Examples).Select(x => x.Id).Order());
        Assert.Equal([4L], r.Groups.Where(g => g.Change == ReplayChange.NewlyAllowed).SelectMany(g => g.Examples).Select(x => x.Id));
        Assert.Contains("3 newly denied", PolicyReplay.Format(r, "text"), StringComparison.Ordinal);
        Assert.Contains("\"newlyDenied\": 3", PolicyReplay.Format(r, "json"), StringComparison.Ordinal);
        Assert.Contains("| newly denied |", PolicyReplay.Format(r, "markdown"), StringComparison.Ordinal);
    }

    [Fact]
    public void Against_a_baseline_policy()
    {
        var replay = new PolicyReplay(Narrowed, baseline: Wide);
        foreach (var e in Recorded)
        {
            replay.Add(e);
        }

        var r = replay.Report();
        // Wide allows everything on both hosts; Narrowed takes away files.pythonhosted.org (2, 8), POST (3) and /simple/x (6 is GET /simple/x: kept).
        Assert.Equal([2L, 3L, 8L], r.Groups.Where(g => g.Change == ReplayChange.NewlyDenied).SelectMany(g => g.Examples).Select(x => x.Id).Order());
        Assert.Equal(0, r.NewlyAllowed);
        Assert.All(r.Groups, g => Assert.Equal("pypi-all", g.RecordedRule));
    }
}
