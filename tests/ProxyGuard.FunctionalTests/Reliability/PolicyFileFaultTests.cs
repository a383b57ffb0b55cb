using System.Net;
using System.Security.Cryptography;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>The policy file deleted, truncated or replaced with garbage while serving: the last good policy keeps deciding, the error is logged.</summary>
[Collection("proxy")]
public sealed class PolicyFileFaultTests : IClassFixture<OriginFixture>
{
    private readonly OriginFixture _f;

    public PolicyFileFaultTests(OriginFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task A_broken_policy_file_never_replaces_the_last_good_policy()
    {
        using var dir = new TempDir();
        var good = $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{_f.Pki.WriteCaPem(dir.Path)}]
            rules:
              - name: open-path
                hosts: [localhost]
                ports: [{_f.Origin.HttpsPort}]
                paths: ["/echo/open/**"]
                action: allow
            """;
        await using var proxy = await ProxyProcess.StartAsync(dir.Path, good);
        using var admin = proxy.AdminClient();
        var sha = await PolicyShaAsync(admin);
        await AssertDecisionsAsync(proxy);

        var faults = new (string Name, Action Apply)[]
        {
            ("truncated", () => File.WriteAllText(proxy.PolicyPath, good[..(good.Length / 2)])),
            ("garbage", () => File.WriteAllBytes(proxy.PolicyPath, RandomNumberGenerator.GetBytes(4096))),
            ("empty", () => File.WriteAllText(proxy.PolicyPath, string.Empty)),
            ("allow-everything-but-invalid", () => File.WriteAllText(proxy.PolicyPath, good.Replace("default: deny", "default: allow\nunknown_key: 1", StringComparison.Ordinal))),
            ("deleted", () => File.Delete(proxy.PolicyPath)),
        };
        var rejections = Count(proxy.Output, "policy reload rejected");
        foreach (var (name, apply) in faults)
        {
            apply();

            // The file watcher reloads on change; the admin API forces it (and covers deletion, which the watcher ignores).
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.True(reload.StatusCode == HttpStatusCode.UnprocessableEntity, $"{name}: reload answered {(int)reload.StatusCode}");
            await WaitUntilAsync(() => Count(proxy.Output, "policy reload rejected") > rejections, $"{name}: no error logged\n{proxy.Output}");
            rejections = Count(proxy.Output, "policy reload rejected");
            Assert.Equal(sha, await PolicyShaAsync(admin));
            await AssertDecisionsAsync(proxy);
            Assert.False(proxy.HasExited, proxy.Output);
        }

        // And a good file still takes effect afterwards: the reload machinery survived the faults.
        await File.WriteAllTextAsync(proxy.PolicyPath, good.Replace("/echo/open/**", "/echo/other/**", StringComparison.Ordinal));
        using (var ok = await admin.PostAsync("api/policy/reload", null))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        Assert.NotEqual(sha, await PolicyShaAsync(admin));
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var denied = await client.GetAsync($"https://localhost:{_f.Origin.HttpsPort}/echo/open/x");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
    }

    private async Task AssertDecisionsAsync(ProxyProcess proxy)
    {
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var allowed = await client.GetAsync($"https://localhost:{_f.Origin.HttpsPort}/echo/open/x");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        using var deniedPath = await client.GetAsync($"https://localhost:{_f.Origin.HttpsPort}/echo/closed");
        Assert.Equal(HttpStatusCode.Forbidden, deniedPath.StatusCode);
        using var deniedHost = await client.GetAsync($"http://127.0.0.1:{_f.Origin.HttpPort}/echo/open/x");
        Assert.Equal(HttpStatusCode.Forbidden, deniedHost.StatusCode);
    }

    private static async Task<string> PolicyShaAsync(HttpClient admin)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(await admin.GetStringAsync("api/policy"));
        return doc.RootElement.GetProperty("sha256").GetString()!;
    }

    private static int Count(string text, string what)
    {
        var count = 0;
        for (var at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string message)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(100);
        }

        Assert.True(condition(), message);
    }
}
