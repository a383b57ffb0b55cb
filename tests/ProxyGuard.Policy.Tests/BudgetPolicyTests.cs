namespace ProxyGuard.Policy.Tests;

/// <summary>The <c>budgets</c> section: what it compiles to, which requests each budget counts, and its diagnostics.</summary>
public sealed class BudgetPolicyTests
{
    private const string Head = """
        version: 1
        clients:
          - {id: agent-1, token: "env:T1"}
          - {id: agent-2, token: "env:T2"}
        rules:
          - name: api
            hosts: [api.example.com, "*.example.org"]
            action: allow
          - name: other
            hosts: [other.example.com]
            action: allow

        """;

    private static readonly PolicyLoadOptions s_options = new() { CheckFilePermissions = false };

    [Fact]
    public void A_budget_compiles_with_its_match_dimensions_and_limits()
    {
        var policy = TestPolicies.Load(Head + """
            budgets:
              - name: slow-drip
                match: {hosts: [api.example.com, "*.example.org"], rule: api, clients: [agent-1]}
                per: [host, client]
                requests: 100/1m
                upload_bytes: 10MiB/1h
              - name: everything
                requests: 5000/24h
            """, s_options);

        Assert.Equal(2, policy.Budgets.Count);
        var b = policy.Budgets[0];
        Assert.Equal("slow-drip", b.Name);
        Assert.Equal(["client", "host"], b.Per); // key order is fixed whatever the file's order
        Assert.Equal(new BudgetLimit(BudgetQuantity.Requests, 100, TimeSpan.FromMinutes(1)), b.Limits[0]);
        Assert.Equal(new BudgetLimit(BudgetQuantity.UploadBytes, 10L * 1024 * 1024, TimeSpan.FromHours(1)), b.Limits[1]);
        Assert.Equal(13, b.Line);

        var all = policy.Budgets[1];
        Assert.Equal(["client", "host"], all.Per); // the default
        Assert.Equal("client=agent-1 host=api.example.com", b.KeyFor("agent-1", "api.example.com", "api"));

        Assert.Equal(["slow-drip", "everything"], policy.BudgetsFor("agent-1", "a.b.example.org", "api").Select(x => x.Name));
        Assert.Equal(["everything"], policy.BudgetsFor("agent-2", "api.example.com", "api").Select(x => x.Name)); // client
        Assert.Equal(["everything"], policy.BudgetsFor("agent-1", "api.example.com", "other").Select(x => x.Name)); // rule
        Assert.Equal(["everything"], policy.BudgetsFor("agent-1", "example.org", "api").Select(x => x.Name)); // host: *.x is not the apex
    }

    [Fact]
    public void Mistakes_are_reported_at_their_position_with_what_was_expected()
    {
        var errors = TestPolicies.Errors(Head + """
            budgets:
              - name: a
                match: {rule: apx, hosts: ["*.com"], clients: [agent-9]}
                per: [client, hots, client]
                requests: 10/0s
                upload_bytes: 10MB/1h
              - name: b
                per: [rule]
              - name: a
                requests: 1/1m
                colour: red
              - name: c
                requests: "-5/1m"
                upload_bytes: 1GiB
              - name: d
                requests: 100/200h
            """, s_options).Select(d => $"{d.Line}:{d.Column}: {d.Message}").ToList();

        void Has(string position, string text) =>
            Assert.True(errors.Any(e => e.StartsWith(position, StringComparison.Ordinal) && e.Contains(text, StringComparison.Ordinal)),
                $"no '{position} ... {text}' in:\n{string.Join('\n', errors)}");

        Has("14:19: budgets[0].match.rule", "unknown rule 'apx'; did you mean 'api'?");
        Has("14:32: budgets[0].match.hosts[0]", "public suffix");
        Has("14:52: budgets[0].match.clients[0]", "unknown client 'agent-9'");
        Has("15:19: budgets[0].per[1]", "invalid dimension 'hots'; expected client | host | rule");
        Has("15:25: budgets[0].per[2]", "'client' is listed twice");
        Has("16:15: budgets[0].requests", "window 0s is out of range");
        Has("17:19: budgets[0].upload_bytes", "invalid size '10MB'");
        Has("18:5: budgets[1]", "a budget needs 'requests' (e.g. 100/1m) or 'upload_bytes'");
        Has("20:11: budgets[2].name", "duplicate budget name 'a' (first defined at line 13)");
        Has("22:5: unknown key 'colour' in budgets[2]", "expected one of: name, match, per, requests, upload_bytes");
        Has("24:15: budgets[3].requests", "invalid request count '-5'");
        Has("25:19: budgets[3].upload_bytes", "expected AMOUNT/WINDOW such as 10MiB/1h, got '1GiB'");
        Has("27:15: budgets[4].requests", "window 200h is out of range; use 1s to 168h");
    }
}
