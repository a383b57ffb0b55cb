using System.Text;
using CsCheck;

namespace ProxyGuard.Policy.Tests;

/// <summary>
/// The rule index narrows each decision to the rules whose host patterns can match. It must never leave out a rule
/// that matches (or first-match-wins would change), and must keep policy order.
/// </summary>
public sealed class RuleIndexTests
{
    private static readonly string[] Labels = ["a", "b", "api", "example", "com", "net", "x-1", "internal"];

    private static readonly Gen<string> Name = Gen.Int[1, 4].SelectMany(n => Gen.OneOfConst(Labels).Array[n].Select(parts => string.Join('.', parts)));

    private static readonly Gen<string> Pattern = Gen.OneOf(
        Name,
        Name.Select(n => "*." + n + ".example.com"),
        Gen.OneOfConst("*.example.com", "*.api.example.com"),
        Gen.OneOfConst("*", "10.0.0.0/8", "10.1.2.3", "192.168.0.0/16", "::1", "fd00::/8", "127.0.0.1"));

    private static readonly Gen<string> Host = Gen.OneOf(
        Name,
        Name.Select(n => n + ".example.com"),
        Gen.OneOfConst("10.1.2.3", "10.9.9.9", "192.168.4.5", "127.0.0.1", "::1", "fd00::5", "8.8.8.8", "com", "example.com"));

    [Fact]
    public void Candidates_include_every_rule_whose_hosts_match_in_policy_order()
    {
        Gen.Select(Pattern.Array[1, 3].Array[1, 25], Host.Array[1, 20], (rules, hosts) => (rules, hosts)).Sample((rules, hosts) =>
        {
            var yaml = new StringBuilder("version: 1\ndefault: deny\nrules:\n");
            for (var i = 0; i < rules.Length; i++)
            {
                yaml.Append("  - name: r").Append(i).Append("\n    hosts: [")
                    .Append(string.Join(", ", rules[i].Select(p => "\"" + p + "\""))).Append("]\n    action: ")
                    .Append(i % 3 == 0 ? "deny" : "allow").Append('\n');
            }

            var policy = TestPolicies.Load(yaml.ToString());
            var index = new RuleIndex(policy.Rules);
            foreach (var host in hosts)
            {
                Assert.True(HostNormalizer.TryNormalize(host, out var normalized, out _));
                var candidates = index.Candidates(normalized);
                Assert.Equal(candidates.Order().Distinct(), candidates);
                for (var r = 0; r < policy.Rules.Count; r++)
                {
                    if (policy.Rules[r].HostMatcher.Matches(normalized))
                    {
                        Assert.Contains(r, candidates);
                    }
                }
            }
        }, iter: 400);
    }

    [Fact]
    public void Ten_thousand_rules_decide_like_a_walk_over_all_of_them()
    {
        var yaml = new StringBuilder("version: 1\ndefault: deny\nrules:\n");
        for (var i = 0; i < 10_000; i++)
        {
            yaml.Append("  - name: r").Append(i).Append("\n    hosts: [h").Append(i).Append(".example.com, \"*.w")
                .Append(i).Append(".example.net\"]\n    methods: [GET]\n    action: allow\n");
        }

        yaml.Append("  - name: last\n    hosts: [\"*\"]\n    action: deny\n");
        var policy = TestPolicies.Load(yaml.ToString());
        foreach (var (host, rule) in new[] { ("h0.example.com", "r0"), ("h9999.example.com", "r9999"), ("a.b.w4242.example.net", "r4242"), ("w4242.example.net", "last"), ("nowhere.test", "last") })
        {
            var decision = policy.MatchRequest(null, "https", host, 443, "GET", "/");
            Assert.Equal(rule, decision.Rule);
        }
    }
}
