using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// The getting-started guides: every <c>sh</c> block runs, in order, through
/// <c>docs/check-commands.sh</c> (loopback only) with this build's proxyguard.
/// </summary>
[Collection("proxy")]
public sealed class DocsCommandsTests
{
    [Theory]
    [InlineData("docs/getting-started-agent-operator.md", 8)]
    [InlineData("docs/getting-started-policy-author.md", 8)]
    [InlineData("docs/getting-started-operator.md", 5)]
    [InlineData("docs/getting-started-policy.md", 7)]
    public async Task Every_command_in_the_guide_runs(string guide, int minimumBlocks)
    {
        var env = new Dictionary<string, string> { ["PROXYGUARD_DLL"] = ProxyProcess.DllPath };
        var result = await Cli.RunProgramAsync("bash", [Repo.PathOf("docs/check-commands.sh"), Repo.PathOf(guide)], Repo.Root, env, TimeSpan.FromMinutes(8));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("   ok", result.Stdout, StringComparison.Ordinal);
        var ran = result.Stdout.Split('\n').Count(l => l.StartsWith("   ran + ", StringComparison.Ordinal));
        Assert.True(ran >= minimumBlocks, $"only {ran} blocks ran:\n{result.Stdout}");
    }

    /// <summary>A new guide is run in CI as soon as it exists: it must have its row above.</summary>
    [Fact]
    public void Every_getting_started_guide_is_run()
    {
        var theory = typeof(DocsCommandsTests).GetMethod(nameof(Every_command_in_the_guide_runs))!;
        var run = theory.GetCustomAttributes(typeof(InlineDataAttribute), false).Cast<InlineDataAttribute>()
            .Select(a => (string)a.GetData(theory).Single()[0]).Order(StringComparer.Ordinal);
        var guides = Directory.GetFiles(Repo.PathOf("docs"), "getting-started-*.md")
            .Select(f => "docs/" + Path.GetFileName(f)).Order(StringComparer.Ordinal);
        Assert.Equal(guides, run);

        // And the README's "Start here" sends each role to them.
        var readme = File.ReadAllText(Repo.PathOf("README.md"));
        var startHere = readme[readme.IndexOf("## Start here", StringComparison.Ordinal)..readme.IndexOf("## Five-minute quick start", StringComparison.Ordinal)];
        Assert.All(guides, g => Assert.Contains($"]({g})", startHere, StringComparison.Ordinal));
        Assert.All(["agent operator", "policy author", "operator / SRE"], role => Assert.Contains(role, startHere, StringComparison.Ordinal));
    }

    /// <summary>In CI (<c>PG_REQUIRE_TOOLS=1</c>) a guide step is skipped only for Docker, systemd or a cluster.</summary>
    [Fact]
    public async Task In_ci_a_step_whose_tool_is_missing_fails_the_check()
    {
        using var dir = new TempDir();
        var doc = dir.Write("needs-tool.md", "# x\n\n```sh requires=pg-no-such-tool\necho never\n```\n\n```sh\necho fine\n```\n");
        var env = new Dictionary<string, string> { ["PROXYGUARD_DLL"] = ProxyProcess.DllPath, ["PG_REQUIRE_TOOLS"] = "1" };
        var result = await Cli.RunProgramAsync("bash", [Repo.PathOf("docs/check-commands.sh"), doc], Repo.Root, env, TimeSpan.FromMinutes(3));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("needs pg-no-such-tool, which is not installed", result.Stderr, StringComparison.Ordinal);

        env["PG_REQUIRE_TOOLS"] = "0";
        result = await Cli.RunProgramAsync("bash", [Repo.PathOf("docs/check-commands.sh"), doc], Repo.Root, env, TimeSpan.FromMinutes(3));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("skipped needs-tool.md:3 (needs pg-no-such-tool)", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_command_fails_the_check()
    {
        using var dir = new TempDir();
        var doc = dir.Write("broken.md", "# x\n\n```sh\necho fine\n```\n\n```sh\nproxyguard policy check does-not-exist.yaml\n```\n");
        var env = new Dictionary<string, string> { ["PROXYGUARD_DLL"] = ProxyProcess.DllPath };
        var result = await Cli.RunProgramAsync("bash", [Repo.PathOf("docs/check-commands.sh"), doc], Repo.Root, env, TimeSpan.FromMinutes(3));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("FAILED", result.Stderr, StringComparison.Ordinal);
    }
}
