using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Issue 20 class 5: <c>proxyguard run</c> refuses to start when the data directory, the admin token file, the CA key
/// or the leaf key is writable by group or others (a planted token would otherwise be accepted), with one line naming
/// the file and the chmod that fixes it; and it creates its directories 0700 and its data and key files 0600.
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class KeyMaterialPermissionTests
{
    private const string Policy = """
        version: 1
        default: deny
        rules: []
        """;

    private const string PlantedToken = "planted-admin-token-0123456789abcdef";

    private static async Task<CommandResult> RunAsync(string dir)
    {
        var policy = Path.Combine(dir, "policy.yaml");
        if (!File.Exists(policy))
        {
            await File.WriteAllTextAsync(policy, Policy);
        }

        // An empty PROXYGUARD_ADMIN_TOKEN: the token comes from the data directory's file.
        return await Cli.RunProgramAsync("dotnet",
            [ProxyProcess.DllPath, "run", "--policy", policy, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--ca-dir", Path.Combine(dir, "ca"), "--data-dir", Path.Combine(dir, "data")],
            dir, new Dictionary<string, string> { ["PROXYGUARD_ADMIN_TOKEN"] = string.Empty }, TimeSpan.FromSeconds(30));
    }

    private static void AssertRefused(CommandResult result, string file, string chmod)
    {
        Assert.NotEqual(0, result.ExitCode);
        var line = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("proxyguard: cannot start: ", line, StringComparison.Ordinal);
        Assert.Contains(file, line, StringComparison.Ordinal);
        Assert.Contains($"run: {chmod} {file}", line, StringComparison.Ordinal);
        Assert.DoesNotContain("listening", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(PlantedToken, result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Planted_world_writable_admin_token_is_refused()
    {
        using var dir = new TempDir();
        var data = Path.Combine(dir.Path, "data");
        Directory.CreateDirectory(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var token = Path.Combine(data, "admin.token");
        await File.WriteAllTextAsync(token, PlantedToken + "\n");
        File.SetUnixFileMode(token, (UnixFileMode)0b110_110_110);
        AssertRefused(await RunAsync(dir.Path), token, "chmod 600");

        // Group-writable is refused too; 0600 starts (shown by the last test).
        File.SetUnixFileMode(token, (UnixFileMode)0b110_110_000);
        AssertRefused(await RunAsync(dir.Path), token, "chmod 600");
    }

    [Fact]
    public async Task World_writable_data_directory_is_refused()
    {
        using var dir = new TempDir();
        var data = Path.Combine(dir.Path, "data");
        Directory.CreateDirectory(data);
        File.SetUnixFileMode(data, (UnixFileMode)0b111_111_111);
        AssertRefused(await RunAsync(dir.Path), data, "chmod 700");
    }

    [Fact]
    public async Task World_writable_ca_key_and_leaf_key_are_refused()
    {
        using var dir = new TempDir();
        var init = await Cli.RunAsync(dir.Path, "ca", "init", "--dir", Path.Combine(dir.Path, "ca"));
        Assert.True(init.ExitCode == 0, init.All);
        var caKey = Path.Combine(dir.Path, "ca", "ca-key.pem");
        File.SetUnixFileMode(caKey, (UnixFileMode)0b110_110_110);
        AssertRefused(await RunAsync(dir.Path), caKey, "chmod 600");

        File.SetUnixFileMode(caKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var leafKey = Path.Combine(dir.Path, "ca", "leaf-key.pem");
        if (!File.Exists(leafKey))
        {
            // ca init may not write the leaf key; plant one as an attacker would.
            await File.WriteAllTextAsync(leafKey, "planted");
        }

        File.SetUnixFileMode(leafKey, (UnixFileMode)0b110_110_110);
        AssertRefused(await RunAsync(dir.Path), leafKey, "chmod 600");
    }

    [Fact]
    public async Task Created_directories_are_0700_and_data_and_key_files_0600()
    {
        using var dir = new TempDir();
        await using (var proxy = await ProxyProcess.StartAsync(Path.Combine(dir.Path, "p"), Policy,
                         environment: new Dictionary<string, string> { ["PROXYGUARD_ADMIN_TOKEN"] = string.Empty }))
        {
            // The store is open in WAL mode while the proxy runs: events.db-wal and -shm exist.
            const UnixFileMode Dir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
            const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            Assert.Equal(Dir, File.GetUnixFileMode(proxy.DataDirectory));
            Assert.Equal(Dir, File.GetUnixFileMode(proxy.CaDirectory));
            foreach (var file in new[]
                     {
                         Path.Combine(proxy.DataDirectory, "events.db"), Path.Combine(proxy.DataDirectory, "events.db-wal"),
                         Path.Combine(proxy.DataDirectory, "events.db-shm"), Path.Combine(proxy.DataDirectory, "admin.token"),
                         Path.Combine(proxy.DataDirectory, "installation.key"), Path.Combine(proxy.CaDirectory, "ca-key.pem"),
                         Path.Combine(proxy.CaDirectory, "leaf-key.pem"),
                     })
            {
                Assert.True(File.Exists(file), file);
                Assert.True(File.GetUnixFileMode(file) == Private, $"{file}: {File.GetUnixFileMode(file)}");
            }
        }
    }
}
