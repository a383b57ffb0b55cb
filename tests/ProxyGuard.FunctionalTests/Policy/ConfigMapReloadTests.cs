using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Kubernetes-style policy files: a ConfigMap volume (<c>policy.yaml -> ..data/policy.yaml</c>, <c>..data</c> a link to a
/// timestamped directory swapped by renaming a new link over it) and a policy path that is a link to a file elsewhere.
/// A running proxy follows both without a restart or a signal, and <c>proxyguard_policy_info</c> shows the hash in effect.
/// </summary>
[Collection("proxy")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ConfigMapReloadTests : IClassFixture<PolicyOrigin>
{
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>The brief's bound: a swapped ConfigMap decides requests within a second.</summary>
    private static readonly TimeSpan SwapBudget = TimeSpan.FromSeconds(1);

    private readonly PolicyOrigin _o;

    public ConfigMapReloadTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    private static string Version(string version) => $$"""
        rules:
          - name: {{version}}-rule
            hosts: [localhost]
            ports: [{HTTPS}]
            paths: ["/echo/{{version}}/**"]
            action: allow
        """;

    [Fact]
    public async Task A_configmap_data_swap_is_followed_within_1_s_and_an_invalid_swap_keeps_the_last_good_policy()
    {
        using var dir = new TempDir();
        var volume = new ConfigMapVolume(Directory.CreateDirectory(dir.File("configmap"), DirectoryMode).FullName);
        var v1 = _o.Policy(Version("v1"));
        var v2 = _o.Policy(Version("v2"));
        await volume.PublishAsync(v1);
        var proxyDir = Directory.CreateDirectory(dir.File("proxy"), DirectoryMode).FullName;
        await using var proxy = await ProxyProcess.StartWithPolicyFileAsync(proxyDir, volume.PolicyPath);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        Assert.Equal("v1", await AllowedVersionAsync(client));
        Assert.Equal([Sha256(v1)], await PolicyInfoAsync(proxy));

        // kubelet's update: a new timestamped directory, a new ..data link renamed over the old one, the old directory removed.
        await volume.PublishAsync(v2);
        var took = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(took < SwapBudget, $"the swap took effect after {took.TotalMilliseconds:F0} ms");
        Assert.Equal([Sha256(v2)], await PolicyInfoAsync(proxy));
        Assert.False(proxy.HasExited);

        // An invalid policy swapped in: rejected with its location, the last good policy keeps deciding and stays in the metric.
        var errorsBefore = await ReloadCountAsync(proxy, "error");
        var broken = _o.Policy(Version("v1")).Replace("action: allow", "action: maybe", StringComparison.Ordinal);
        await volume.PublishAsync(broken);
        await WaitUntilAsync(async () => await ReloadCountAsync(proxy, "error") > errorsBefore, TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.Contains(proxy.Output.Split('\n'), l => l.Contains("keeping the last good policy", StringComparison.Ordinal) && l.Contains("maybe", StringComparison.Ordinal));
        Assert.Equal("v2", await AllowedVersionAsync(client));
        Assert.Equal([Sha256(v2)], await PolicyInfoAsync(proxy));

        // The next good swap is followed again (the watcher moved on to the new directories each time).
        await volume.PublishAsync(v1);
        var again = await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v1", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.True(again < SwapBudget, $"the swap after an invalid one took effect after {again.TotalMilliseconds:F0} ms");
        Assert.Equal([Sha256(v1)], await PolicyInfoAsync(proxy));
        Assert.Single(Directory.GetDirectories(volume.Root, "..20*"));
    }

    [Fact]
    public async Task A_symlinked_policy_file_is_followed_when_its_target_is_edited_and_when_the_link_is_retargeted()
    {
        using var dir = new TempDir();
        var versions = Directory.CreateDirectory(dir.File("versions"), DirectoryMode).FullName;
        var first = Path.Combine(versions, "first.yaml");
        PolicyReloadTests.WritePolicy(first, _o.Policy(Version("v1")));
        var proxyDir = Directory.CreateDirectory(dir.File("proxy"), DirectoryMode).FullName;
        var link = Path.Combine(proxyDir, "policy.yaml");
        File.CreateSymbolicLink(link, first);
        await using var proxy = await ProxyProcess.StartWithPolicyFileAsync(proxyDir, link);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        Assert.Equal("v1", await AllowedVersionAsync(client));

        // The target, in another directory, edited in place: no signal, no API call.
        PolicyReloadTests.WritePolicy(first, _o.Policy(Version("v2")));
        await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.Equal([Sha256(File.ReadAllText(first))], await PolicyInfoAsync(proxy));

        // The link retargeted atomically (ln -sfn's way: a new link renamed over the old one).
        var second = Path.Combine(versions, "second.yaml");
        PolicyReloadTests.WritePolicy(second, _o.Policy(Version("v1")));
        var temp = Path.Combine(proxyDir, ".policy.yaml.tmp");
        File.CreateSymbolicLink(temp, second);
        await RenameAsync(temp, link);
        await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v1", TimeSpan.FromSeconds(15), () => proxy.Output);

        // Now the new target is followed, and the old one no longer matters.
        await Task.Delay(1000); // let the retarget's events settle before counting
        var reloads = await ReloadCountAsync(proxy, "ok");
        PolicyReloadTests.WritePolicy(first, _o.Policy(Version("v1")) + "# unrelated now\n");
        await Task.Delay(1000);
        Assert.Equal(reloads, await ReloadCountAsync(proxy, "ok"));
        PolicyReloadTests.WritePolicy(second, _o.Policy(Version("v2")));
        await WaitUntilAsync(async () => await AllowedVersionAsync(client) == "v2", TimeSpan.FromSeconds(15), () => proxy.Output);
        Assert.Equal([Sha256(File.ReadAllText(second))], await PolicyInfoAsync(proxy));
    }

    /// <summary>Every <c>proxyguard_policy_info</c> series with value 1, by its sha256 label.</summary>
    internal static async Task<List<string>> PolicyInfoAsync(ProxyProcess proxy)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(proxy.AdminUrl + "/metrics");
        return [.. Regex.Matches(text, "^proxyguard_policy_info\\{sha256=\"([0-9a-f]{64})\"\\} 1$", RegexOptions.Multiline).Select(m => m.Groups[1].Value)];
    }

    internal static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static async Task<double> ReloadCountAsync(ProxyProcess proxy, string result)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(proxy.AdminUrl + "/metrics");
        var match = Regex.Match(text, $"^proxyguard_policy_reloads_total\\{{result=\"{result}\"\\}} (\\S+)$", RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>rename(2) of <paramref name="source"/> over <paramref name="destination"/>, even when that is a link to a directory.</summary>
    private static async Task RenameAsync(string source, string destination)
    {
        var result = await Cli.RunProgramAsync("mv", ["-T", source, destination], Path.GetDirectoryName(destination)!, null);
        Assert.True(result.ExitCode == 0, result.All);
    }

    /// <summary>Which of /echo/v1 and /echo/v2 the proxy allows right now ("v1", "v2", "both" or "none").</summary>
    private async Task<string> AllowedVersionAsync(HttpClient client)
    {
        var marker = Guid.NewGuid().ToString("N")[..8];
        using var v1 = await client.GetAsync(_o.HttpsUrl($"/echo/v1/probe-{marker}"));
        using var v2 = await client.GetAsync(_o.HttpsUrl($"/echo/v2/probe-{marker}"));
        Assert.True(v1.StatusCode is HttpStatusCode.OK or HttpStatusCode.Forbidden, $"v1 probe: {v1.StatusCode}");
        Assert.True(v2.StatusCode is HttpStatusCode.OK or HttpStatusCode.Forbidden, $"v2 probe: {v2.StatusCode}");
        return (v1.StatusCode == HttpStatusCode.OK, v2.StatusCode == HttpStatusCode.OK) switch
        {
            (true, true) => "both",
            (true, false) => "v1",
            (false, true) => "v2",
            _ => "none",
        };
    }

    /// <summary>
    /// A ConfigMap volume as kubelet lays it out: <c>..YYYY_MM_DD_hh_mm_ss.N/policy.yaml</c>, <c>..data</c> a relative link
    /// to that directory, and <c>policy.yaml -> ..data/policy.yaml</c>. Each publish writes a complete new directory,
    /// renames a new <c>..data_tmp</c> link over <c>..data</c> (the atomic step) and removes the previous directory.
    /// </summary>
    private sealed class ConfigMapVolume
    {
        private int _generation;
        private string? _current;

        public ConfigMapVolume(string root)
        {
            Root = root;
        }

        public string Root { get; }

        public string PolicyPath => Path.Combine(Root, "policy.yaml");

        public async Task PublishAsync(string policy)
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"..2026_12_03_03_00_00.{++_generation:D9}");
            var version = Directory.CreateDirectory(Path.Combine(Root, name), DirectoryMode).FullName;
            PolicyReloadTests.WritePolicy(Path.Combine(version, "policy.yaml"), policy);
            var data = Path.Combine(Root, "..data");
            if (_current is null)
            {
                File.CreateSymbolicLink(data, name);
                File.CreateSymbolicLink(PolicyPath, "..data/policy.yaml");
            }
            else
            {
                var temp = Path.Combine(Root, "..data_tmp");
                File.CreateSymbolicLink(temp, name);
                await RenameAsync(temp, data);
                Directory.Delete(_current, recursive: true);
            }

            _current = version;
        }
    }
}
