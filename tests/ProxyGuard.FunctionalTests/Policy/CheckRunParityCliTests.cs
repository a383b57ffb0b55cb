using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Issue 19, check == run: <c>policy check</c> and <c>run</c> validate a policy with one routine, so a policy that
/// passes check starts, and one that run refuses fails check with the same FILE:LINE:COL lines.
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class CheckRunParityCliTests
{
    [Fact]
    public async Task Check_and_run_refuse_the_same_CA_files_with_the_same_positions()
    {
        using var dir = new TempDir();
        using var pki = new TestPki();
        var good = pki.WriteCaPem(dir.Path);
        dir.Write("not-pem.pem", "MIIB this is base64 without a PEM header\n");
        var policy = dir.Write("p.yaml", $"""
            version: 1
            default: deny
            tls:
              upstream_ca_files:
                - {good}
                - {dir.File("missing.pem")}
                - {dir.File("not-pem.pem")}
            rules:
              - name: gh
                hosts: [api.github.com]
                action: allow
            """);

        var check = await Cli.RunAsync(dir.Path, "policy", "check", policy);
        Assert.True(check.ExitCode == 1, check.All);
        Assert.DoesNotContain(": ok", check.Stdout, StringComparison.Ordinal);
        var checkLines = Positioned(check.Stderr, policy);
        Assert.Equal(2, checkLines.Count);
        Assert.StartsWith($"{policy}:6:7: tls.upstream_ca_files[1]: ", checkLines[0], StringComparison.Ordinal);
        Assert.StartsWith($"{policy}:7:7: tls.upstream_ca_files[2]: ", checkLines[1], StringComparison.Ordinal);
        Assert.Contains("holds no PEM certificate", check.Stderr, StringComparison.Ordinal);

        // run refuses with exactly the lines check printed, before it creates or binds anything.
        var data = dir.File("data");
        var run = await Cli.RunProgramAsync(
            "dotnet",
            [ProxyProcess.DllPath, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ca-dir", dir.File("ca"), "--data-dir", data],
            dir.Path, null, TimeSpan.FromSeconds(60));
        Assert.True(run.ExitCode == 1, run.All);
        Assert.Equal(checkLines, Positioned(run.Stderr, policy));
        Assert.Contains($"proxyguard: the policy {policy} is invalid; not starting", run.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "run created its data directory for a policy it refuses");
        Assert.False(Directory.Exists(dir.File("ca")), "run created a CA for a policy it refuses");
        Assert.DoesNotContain("   at ", run.All, StringComparison.Ordinal);

        // Fixed, both accept it.
        File.Copy(good, dir.File("missing.pem"));
        File.Copy(good, dir.File("not-pem.pem"), overwrite: true);
        var ok = await Cli.RunAsync(dir.Path, "policy", "check", policy);
        Assert.True(ok.ExitCode == 0, ok.All);
        Assert.Contains($"{policy}: ok", ok.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_with_resolve_secrets_resolves_as_run_and_reports_the_position()
    {
        using var dir = new TempDir();
        var policy = dir.Write("p.yaml", """
            version: 1
            rules:
              - name: api
                hosts: [api.example.com]
                action: allow
            secrets:
              - name: key
                value: env:PG_PARITY_UNSET_SECRET
                hosts: [api.example.com]
            """);

        // Without --resolve-secrets only the syntax is checked; with it, the reference is resolved (and fails here).
        var syntax = await Cli.RunAsync(dir.Path, "policy", "check", policy);
        Assert.True(syntax.ExitCode == 0, syntax.All);
        var resolved = await Cli.RunAsync(dir.Path, "policy", "check", "--resolve-secrets", policy);
        Assert.True(resolved.ExitCode == 1, resolved.All);
        Assert.Matches(new Regex("^" + Regex.Escape(policy) + @":8:12: .*PG_PARITY_UNSET_SECRET", RegexOptions.Multiline), resolved.Stderr);

        // The resolver is set up from the environment as run sets it up: a malformed setting is reported, not ignored.
        var bad = await Cli.RunProgramAsync(
            "dotnet", [ProxyProcess.DllPath, "policy", "check", "--resolve-secrets", policy], dir.Path,
            new Dictionary<string, string> { ["PROXYGUARD_SECRET_CACHE_TTL"] = "soon" });
        Assert.True(bad.ExitCode == 2, bad.All);
        Assert.Contains("PROXYGUARD_SECRET_CACHE_TTL", bad.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", bad.All, StringComparison.Ordinal);
    }

    /// <summary>The FILE:LINE:COL lines about <paramref name="policy"/>, in order.</summary>
    private static List<string> Positioned(string stderr, string policy) =>
        stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r'))
            .Where(l => Position().IsMatch(l) && l.StartsWith(policy + ":", StringComparison.Ordinal)).ToList();

    [GeneratedRegex(@":\d+:\d+: ")]
    private static partial Regex Position();
}
