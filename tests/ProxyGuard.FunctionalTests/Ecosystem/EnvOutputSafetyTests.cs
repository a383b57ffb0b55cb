using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Issue 20 class 6 (env part): <c>proxyguard env</c> output is safe to source or eval in every format. A hostile
/// <c>--proxy</c> value and CA directory (command substitutions, backticks, quotes, a newline followed by an assignment)
/// run nothing and add no variable when the output is sourced, and round-trip exactly; JSON is always one valid object.
/// </summary>
public sealed class EnvOutputSafetyTests
{
    [Theory]
    [InlineData("sh", "bash")]
    [InlineData("dotenv", "bash")]
    [InlineData("dotenv", "sh")]
    public async Task Hostile_proxy_and_ca_path_run_nothing_and_round_trip_when_sourced(string format, string shell)
    {
        using var dir = new TempDir();
        var marker = Path.Combine(dir.Path, "pwned");
        var proxyValue = $"http://127.0.0.1:3128/$(touch {marker}1)`touch {marker}2`'\"${{IFS}}x EVIL=1; touch {marker}3";
        var caDir = Path.Combine(dir.Path, $"ca $(touch {marker}4) 'q `touch {marker}5`");
        await InitCaAsync(dir.Path, caDir); // env uses the proxy's CA; it never creates one

        // A line break cannot be carried safely by line-based readers (docker --env-file): refused, nothing printed.
        var broken = await Cli.RunAsync(dir.Path, "env", "--format", format, "--proxy", proxyValue + "\nEVIL=1", "--ca-dir", caDir,
            "--data-dir", Path.Combine(dir.Path, "data"));
        Assert.True(broken.ExitCode != 0, broken.All);
        Assert.Equal(format == "sh" ? "false\n" : string.Empty, broken.Stdout); // sh: a failing statement, so eval fails too
        Assert.Contains("line break", broken.Stderr, StringComparison.Ordinal);

        var result = await Cli.RunAsync(dir.Path, "env", "--format", format, "--proxy", proxyValue, "--ca-dir", caDir,
            "--data-dir", Path.Combine(dir.Path, "data"));
        Assert.True(result.ExitCode == 0, result.Stderr);
        var file = Path.Combine(dir.Path, "sandbox.env");
        await File.WriteAllTextAsync(file, result.Stdout);

        var script = "set -a; . \"$1\"; set +a; printf '%s\\0%s\\0%s\\0%s' \"$HTTPS_PROXY\" \"$NODE_EXTRA_CA_CERTS\" \"${EVIL-unset}\" \"$NO_PROXY\"";
        var sourced = await Cli.RunProgramAsync(shell, ["-c", script, "sourcer", file], dir.Path, null, TimeSpan.FromSeconds(30));
        Assert.True(sourced.ExitCode == 0, sourced.Stderr);
        var values = sourced.Stdout.Split('\0');
        Assert.Equal(proxyValue, values[0]);
        Assert.Equal(Path.Combine(caDir, "ca.pem"), values[1]);
        Assert.Equal("unset", values[2]);
        Assert.Equal(string.Empty, values[3]);
        for (var i = 1; i <= 5; i++)
        {
            Assert.False(File.Exists(marker + i), $"sourcing the {format} output ran a command ({marker}{i})");
        }
    }

    [Fact]
    public async Task Json_is_valid_with_hostile_values_and_a_repeated_name_never_crashes()
    {
        using var dir = new TempDir();
        var proxyValue = "http://127.0.0.1:3128/\"}{\"x\":\u0001$(id)";
        await InitCaAsync(dir.Path, Path.Combine(dir.Path, "ca"));
        var result = await Cli.RunAsync(dir.Path, "env", "--format", "json", "--proxy", proxyValue, "--ca-dir", Path.Combine(dir.Path, "ca"),
            "--data-dir", Path.Combine(dir.Path, "data"));
        Assert.True(result.ExitCode == 0, result.Stderr);
        using (var doc = JsonDocument.Parse(result.Stdout))
        {
            Assert.Equal(proxyValue, doc.RootElement.GetProperty("HTTPS_PROXY").GetString());
        }

        // A secret whose sandbox_env repeats a name env prints itself: one object, the later (the placeholder) wins,
        // as it does when the sh output is sourced. (A policy that refuses the name is also fine: a one-line error.)
        var policy = Path.Combine(dir.Path, "policy.yaml");
        await File.WriteAllTextAsync(policy, """
            version: 1
            default: deny
            secrets:
              - name: dup
                value: env:PG_DUP_SECRET
                placeholder: PG_DUP_PLACEHOLDER_0123456789
                sandbox_env: HTTPS_PROXY
                hosts: [example.com]
                in: [headers]
            rules: []
            """);
        var dup = await Cli.RunAsync(dir.Path, "env", "--format", "json", "--proxy", "http://127.0.0.1:3128", "--ca-dir", Path.Combine(dir.Path, "ca"),
            "--data-dir", Path.Combine(dir.Path, "data"), "--policy", policy);
        Assert.DoesNotContain("Unhandled exception", dup.All, StringComparison.Ordinal);
        if (dup.ExitCode == 0)
        {
            using var doc = JsonDocument.Parse(dup.Stdout);
            Assert.Equal("PG_DUP_PLACEHOLDER_0123456789", doc.RootElement.GetProperty("HTTPS_PROXY").GetString());
            Assert.Equal("http://127.0.0.1:3128", doc.RootElement.GetProperty("HTTP_PROXY").GetString());
        }
        else
        {
            // The policy's own FILE:LINE:COL diagnostics, then one line from env.
            Assert.DoesNotContain("   at ", dup.All, StringComparison.Ordinal);
            Assert.StartsWith("proxyguard: ", dup.Stderr.Trim().Split('\n')[^1], StringComparison.Ordinal);
        }
    }

    internal static async Task InitCaAsync(string workingDirectory, string caDirectory)
    {
        var init = await Cli.RunAsync(workingDirectory, "ca", "init", "--dir", caDirectory);
        Assert.True(init.ExitCode == 0, init.All);
    }
}
