using System.Text.RegularExpressions;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Policy.Tests;

/// <summary>One vocabulary: the closed reason set in the code and the table in docs/policy.md are the same.</summary>
public sealed partial class ReasonVocabularyTests
{
    [Fact]
    public void Every_reason_is_documented_with_its_status_and_stage_and_the_docs_name_no_other()
    {
        var doc = File.ReadAllText(Path.Combine(TestPolicies.RepoRoot(), "docs", "policy.md"));
        var documented = ReasonRow().Matches(doc).ToDictionary(m => m.Groups["name"].Value, m => m);
        foreach (var reason in Reasons.All.Values)
        {
            Assert.True(documented.TryGetValue(reason.Name, out var row), $"{reason.Name} is not in docs/policy.md");
            Assert.Equal(DecisionNames.Of(reason.Stage), row.Groups["stage"].Value);
            Assert.Equal(reason.Status == 0 ? "—" : reason.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), row.Groups["status"].Value);
            Assert.Equal(reason.Auditable ? "yes" : "no", row.Groups["audit"].Value);
        }

        Assert.Empty(documented.Keys.Except(Reasons.All.Keys));
    }

    [Fact]
    public void Reason_names_are_unique_lower_case_words()
    {
        Assert.All(Reasons.All.Keys, name => Assert.Matches("^[a-z0-9]+(-[a-z0-9]+)*$", name));
    }

    [GeneratedRegex(@"^\| `(?<name>[a-z0-9-]+)` \| (?<stage>[a-z]+) \| (?<status>[0-9]+|—) \| (?<audit>yes|no) \|", RegexOptions.Multiline)]
    private static partial Regex ReasonRow();
}
