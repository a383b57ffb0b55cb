using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Headless Chromium (Debian <c>chromium</c>) through the proxy (<c>--proxy-server=$HTTPS_PROXY</c>),
/// trusting the ProxyGuard CA through its NSS database (<c>certutil -A -t C,, -i $PROXYGUARD_CA_CERT</c>,
/// the step in docs/getting-started-agent-operator.md), or pinning the leaf key with
/// <c>--ignore-certificate-errors-spki-list=$PROXYGUARD_SPKI_SHA256</c>.
/// </summary>
[Collection("proxy")]
public sealed class ChromiumTests : IClassFixture<ChromiumTests.Fixture>
{
    private readonly Fixture _f;

    public ChromiumTests(Fixture fixture)
    {
        _f = fixture;
    }

    /// <summary>Pages under /page/ are allowed; anything else on the origin falls to the default deny inside the tunnel.</summary>
    public sealed class Fixture : OriginFixture
    {
        protected override string Rules => """
            rules:
              - name: pages
                hosts: [origin.test]
                ports: [{HTTPS}]
                paths: ["/page/**"]
                action: allow
            """;
    }

    private static string? Browser => new[] { "chromium", "chromium-browser", "google-chrome" }.FirstOrDefault(Cli.Exists);

    private async Task<CommandResult> DumpDomAsync(string url, bool trustCa = true, string? spki = null)
    {
        var home = Path.Combine(_f.Dir.Path, "chromium-" + Guid.NewGuid().ToString("n")[..8]);
        var nssdb = Path.Combine(home, ".pki", "nssdb");
        Directory.CreateDirectory(nssdb);
        var env = new Dictionary<string, string> { ["HOME"] = home };
        var create = await Cli.RunProgramAsync("certutil", ["-d", "sql:" + nssdb, "-N", "--empty-password"], home, env);
        Assert.True(create.ExitCode == 0, create.All);
        if (trustCa)
        {
            var add = await Cli.RunProgramAsync("certutil", ["-d", "sql:" + nssdb, "-A", "-t", "C,,", "-n", "proxyguard", "-i", _f.Env["PROXYGUARD_CA_CERT"]], home, env);
            Assert.True(add.ExitCode == 0, add.All);
        }

        string[] args =
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--user-data-dir=" + Path.Combine(home, "profile"), "--proxy-server=" + _f.Env["HTTPS_PROXY"], "--dump-dom", url,
        ];
        if (spki is not null)
        {
            args = [.. args[..^2], "--ignore-certificate-errors-spki-list=" + spki, .. args[^2..]];
        }

        return await Cli.RunProgramAsync(Browser ?? "chromium", args, home, env, TimeSpan.FromMinutes(3));
    }

    [RequiresToolsFact("chromium", "certutil")]
    public async Task Allowed_page_loads_through_the_proxy()
    {
        var result = await DumpDomAsync(_f.HttpsUrl("/page/hello", "origin.test"));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("origin ok", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(_f.Origin.Received, r => r == "GET /page/hello");
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString() == "/page/hello", 15000);
        Assert.Equal("allow", e.GetProperty("decision").GetString());
    }

    [RequiresToolsFact("chromium", "certutil")]
    public async Task Denied_page_shows_proxyguards_message()
    {
        var result = await DumpDomAsync(_f.HttpsUrl("/admin/secret", "origin.test"));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("ProxyGuard blocked this request", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.Origin.Received, r => r.Contains("/admin/secret", StringComparison.Ordinal));
        var e = await _f.Proxy.WaitForEventAsync(ev => ev.GetProperty("path").GetString() == "/admin/secret", 15000);
        Assert.Equal("deny", e.GetProperty("decision").GetString());
    }

    [RequiresToolsFact("chromium", "certutil")]
    public async Task Without_the_ca_in_its_nss_database_the_interception_certificate_is_refused()
    {
        var result = await DumpDomAsync(_f.HttpsUrl("/page/untrusted", "origin.test"), trustCa: false);
        Assert.DoesNotContain("origin ok", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.Origin.Received, r => r == "GET /page/untrusted");
    }

    [RequiresToolsFact("chromium", "certutil")]
    public async Task Pinning_the_leaf_spki_from_env_loads_the_page_without_the_nss_database()
    {
        var result = await DumpDomAsync(_f.HttpsUrl("/page/pinned", "origin.test"), trustCa: false, spki: _f.Env["PROXYGUARD_SPKI_SHA256"]);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("origin ok", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(_f.Origin.Received, r => r == "GET /page/pinned");
    }
}
