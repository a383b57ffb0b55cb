using System.Text.RegularExpressions;

namespace ProxyGuard.Policy.Tests;

/// <summary>
/// Table-driven tests over Fixtures/valid (each loads without problems; a sibling *.cases.yaml must pass) and
/// Fixtures/invalid (each lists its exact expected diagnostics as "# expect: LINE:COL: message fragment" comments).
/// </summary>
public sealed partial class FixtureTests
{
    private static readonly PolicyLoadOptions s_options = new()
    {
        CheckFilePermissions = false,
        SecretReferenceValidator = reference => reference.Contains("MISSING", StringComparison.Ordinal) ? "not set on this host" : null,
    };

    public static TheoryData<string> ValidFixtures() => Files("valid");

    public static TheoryData<string> InvalidFixtures() => Files("invalid");

    [Theory]
    [MemberData(nameof(ValidFixtures))]
    public void ValidFixtureLoads(string name)
    {
        var path = Path.Combine(TestPolicies.FixturesDir, "valid", name);
        var result = PolicyLoader.LoadFile(path, s_options);
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        var cases = Path.ChangeExtension(path, ".cases.yaml");
        if (File.Exists(cases))
        {
            var report = PolicyCaseRunner.RunFile(result.Policy!, cases);
            Assert.True(report.Success, string.Join("\n", report.Diagnostics.Select(d => d.ToString()).Concat(report.Results.Where(r => !r.Passed).Select(r => r.ToString()))));
            Assert.NotEmpty(report.Results);
        }
    }

    [Theory]
    [MemberData(nameof(InvalidFixtures))]
    public void InvalidFixtureReportsExactDiagnostics(string name)
    {
        var path = Path.Combine(TestPolicies.FixturesDir, "invalid", name);
        var expected = File.ReadAllLines(path)
            .Select(line => ExpectComment().Match(line))
            .Where(m => m.Success)
            .Select(m => (Line: int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Column: int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), Fragment: m.Groups[3].Value.Trim()))
            .OrderBy(e => e.Line).ThenBy(e => e.Column)
            .ToList();
        Assert.NotEmpty(expected);

        var result = PolicyLoader.LoadFile(path, s_options);
        Assert.False(result.Success);
        var actual = result.Diagnostics;
        var report = string.Join("\n", actual);
        Assert.True(expected.Count == actual.Count, $"expected {expected.Count} diagnostics, got {actual.Count}:\n{report}");
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.True(
                expected[i].Line == actual[i].Line && expected[i].Column == actual[i].Column && actual[i].Message.Contains(expected[i].Fragment, StringComparison.Ordinal),
                $"diagnostic {i}: expected {expected[i].Line}:{expected[i].Column}: ...{expected[i].Fragment}..., got {actual[i]}\nall:\n{report}");
            Assert.Equal(path, actual[i].File);
            Assert.StartsWith($"{path}:{actual[i].Line}:{actual[i].Column}: ", actual[i].ToString(), StringComparison.Ordinal);
        }
    }

    private static TheoryData<string> Files(string kind)
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(TestPolicies.FixturesDir, kind), "*.yaml").Order(StringComparer.Ordinal))
        {
            if (!file.EndsWith(".cases.yaml", StringComparison.Ordinal))
            {
                data.Add(Path.GetFileName(file));
            }
        }

        return data;
    }

    [GeneratedRegex(@"^\s*# expect: (\d+):(\d+): (.+)$")]
    private static partial Regex ExpectComment();
}
