using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// A fact that is skipped, with the reason, when a program it drives is not on PATH. CI installs the
/// tools and sets <c>PG_REQUIRE_TOOLS=1</c>: then a missing tool fails the test instead of skipping
/// it (unless <see cref="Optional"/>, for tools CI does not install, such as Go).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RequiresToolsFactAttribute : FactAttribute
{
    public RequiresToolsFactAttribute(params string[] tools)
    {
        Tools = tools;
        var missing = tools.Where(t => !Cli.Exists(t)).ToList();
        if (missing.Count > 0 && !Required)
        {
            Skip = $"not installed here: {string.Join(", ", missing)} (.ci/run installs them; PG_REQUIRE_TOOLS=1 makes this a failure)";
        }
    }

    public string[] Tools { get; }

    /// <summary>Skip when the tool is absent even when CI requires tools.</summary>
    public bool Optional
    {
        get => _optional;
        set
        {
            _optional = value;
            var missing = Tools.Where(t => !Cli.Exists(t)).ToList();
            if (value && missing.Count > 0)
            {
                Skip = $"not installed here: {string.Join(", ", missing)} (optional)";
            }
        }
    }

    private bool _optional;

    private static bool Required => Environment.GetEnvironmentVariable("PG_REQUIRE_TOOLS") == "1";
}
