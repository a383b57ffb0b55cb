namespace ProxyGuard.Policy.Tests;

internal static class TestPolicies
{
    public static CompiledPolicy Load(string yaml, PolicyLoadOptions? options = null)
    {
        var result = PolicyLoader.LoadText(yaml, "test.yaml", options);
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        return result.Policy!;
    }

    public static IReadOnlyList<PolicyDiagnostic> Errors(string yaml, PolicyLoadOptions? options = null)
    {
        var result = PolicyLoader.LoadText(yaml, "test.yaml", options);
        Assert.False(result.Success);
        Assert.NotEmpty(result.Diagnostics);
        return result.Diagnostics;
    }

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ProxyGuard.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public static string FixturesDir => Path.Combine(AppContext.BaseDirectory, "Fixtures");
}
