using System.Text;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Every variable <c>proxyguard env</c> prints is reserved: a secret's <c>sandbox_env</c> can neither override it
/// (e.g. point HTTPS_PROXY elsewhere) nor collide with it, in any letter case.
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class SandboxEnvReservedTests
{
    [Fact]
    public async Task Every_variable_that_env_prints_is_refused_as_sandbox_env_in_any_case()
    {
        using var dir = new TempDir();
        await Ecosystem.EnvOutputSafetyTests.InitCaAsync(dir.Path, dir.File("ca"));
        var env = await Cli.RunAsync(dir.Path, "env", "--ca-dir", dir.File("ca"), "--data-dir", dir.File("data"));
        Assert.True(env.ExitCode == 0, env.All);
        var names = ExportedName().Matches(env.Stdout).Select(m => m.Groups[1].Value).ToList();
        Assert.Contains("HTTPS_PROXY", names);
        Assert.Contains("SSL_CERT_FILE", names);
        Assert.True(names.Count >= 15, env.Stdout);

        var candidates = names.SelectMany(n => new[] { n, n.ToLowerInvariant() }).Distinct(StringComparer.Ordinal).ToList();
        var policy = new StringBuilder("version: 1\nsecrets:\n");
        for (var i = 0; i < candidates.Count; i++)
        {
            policy.Append(FormattableString.Invariant($"  - {{name: s{i}, value: env:S{i}, hosts: [api.example.com], sandbox_env: {candidates[i]}}}\n"));
        }

        var file = dir.Write("p.yaml", policy.ToString());
        var check = await Cli.RunAsync(dir.Path, "policy", "check", file);
        Assert.True(check.ExitCode == 1, check.All);
        for (var i = 0; i < candidates.Count; i++)
        {
            Assert.True(
                check.Stderr.Contains(FormattableString.Invariant($"{file}:{i + 3}:"), StringComparison.Ordinal)
                && check.Stderr.Contains($"'{candidates[i]}' is reserved", StringComparison.Ordinal),
                $"{candidates[i]} was not refused:\n{check.Stderr}");
        }
    }

    [GeneratedRegex("^export ([A-Za-z_][A-Za-z0-9_]*)=", RegexOptions.Multiline)]
    private static partial Regex ExportedName();
}
