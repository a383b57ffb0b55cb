using System.Net;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests;

/// <summary>Real clients complete requests through the proxy to a TLS origin, trusting only what <c>proxyguard env</c> printed.</summary>
[Collection("proxy")]
public sealed class ClientMatrixTests : IClassFixture<OriginFixture>
{
    private readonly OriginFixture _f;

    public ClientMatrixTests(OriginFixture fixture)
    {
        _f = fixture;
    }

    [Theory]
    [InlineData("--http1.1", "HTTP/1.1")]
    [InlineData("--http2", "HTTP/2")]
    public async Task Curl_through_proxy_reaches_tls_origin(string versionFlag, string expectedProtocol)
    {
        var result = await Cli.RunProgramAsync("curl",
            ["-sS", "--fail", versionFlag, "-w", "\n%{http_version}", _f.HttpsUrl("/echo/curl?a=1")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        var lines = result.Stdout.Split('\n');
        using var doc = JsonDocument.Parse(lines[0]);
        Assert.Equal("/echo/curl?a=1", doc.RootElement.GetProperty("target").GetString());
        Assert.Equal(expectedProtocol == "HTTP/2" ? "2" : "1.1", lines[1]);
    }

    [Fact]
    public async Task Curl_plain_http_absolute_form()
    {
        var result = await Cli.RunProgramAsync("curl", ["-sS", "--fail", _f.HttpUrl("/echo/plain")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("\"target\":\"/echo/plain\"", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Curl_without_the_ca_fails_verification()
    {
        var env = new Dictionary<string, string>(_f.Env);
        foreach (var key in env.Keys.Where(k => k.Contains("CA", StringComparison.Ordinal) || k.StartsWith("SSL_", StringComparison.Ordinal)).ToList())
        {
            env.Remove(key);
        }

        var result = await Cli.RunProgramAsync("curl", ["-sS", _f.HttpsUrl("/echo/x")], _f.Dir.Path, env);
        Assert.NotEqual(0, result.ExitCode);
    }

    [Fact]
    public async Task Python_urllib_with_https_proxy()
    {
        const string script = "import urllib.request,sys\nprint(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())";
        var result = await Cli.RunProgramAsync("python3", ["-c", script, _f.HttpsUrl("/echo/python")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("/echo/python", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Node_https_through_connect_agent()
    {
        // Node 20 has no built-in env proxy support: a minimal proxy-aware agent (CONNECT, then TLS
        // with the default CA store, which NODE_EXTRA_CA_CERTS extends).
        const string script = """
            const http = require('http'), https = require('https'), tls = require('tls');
            const target = new URL(process.argv[1]); const proxy = new URL(process.env.HTTPS_PROXY);
            const req = http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: `${target.hostname}:${target.port}` });
            req.on('connect', (res, socket) => {
              if (res.statusCode !== 200) { console.error('CONNECT ' + res.statusCode); process.exit(2); }
              https.get({ host: target.hostname, port: target.port, path: target.pathname, createConnection: () => tls.connect({ socket, servername: target.hostname }) }, r => {
                let body = ''; r.on('data', d => body += d); r.on('end', () => { console.log(r.statusCode + ' ' + body); process.exit(0); });
              }).on('error', e => { console.error(e.message); process.exit(3); });
            });
            req.on('error', e => { console.error(e.message); process.exit(4); });
            req.end();
            """;
        var result = await Cli.RunProgramAsync("node", ["-e", script, _f.HttpsUrl("/echo/node")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.StartsWith("200 ", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("/echo/node", result.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task Dotnet_httpclient(string version)
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Env["PROXYGUARD_CA_CERT"], Version.Parse(version));
        using var response = await client.GetAsync(_f.HttpsUrl("/echo/dotnet"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Version.Parse(version), response.Version);
        Assert.Contains("/echo/dotnet", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Git_ls_remote_and_clone_over_https()
    {
        var repo = Path.Combine(_f.Dir.Path, "repos", "demo.git");
        var work = Path.Combine(_f.Dir.Path, "work");
        Directory.CreateDirectory(work);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["init", "-q", "--bare", "-b", "main", repo], _f.Dir.Path, null)).ExitCode);
        var seed = Path.Combine(_f.Dir.Path, "seed");
        await Cli.RunProgramAsync("git", ["init", "-q", "-b", "main", seed], _f.Dir.Path, null);
        await File.WriteAllTextAsync(Path.Combine(seed, "README"), "hello through proxyguard\n");
        var gitEnv = new Dictionary<string, string>
        {
            ["GIT_AUTHOR_NAME"] = "t", ["GIT_AUTHOR_EMAIL"] = "t@example.invalid", ["GIT_COMMITTER_NAME"] = "t", ["GIT_COMMITTER_EMAIL"] = "t@example.invalid",
        };
        await Cli.RunProgramAsync("git", ["-C", seed, "add", "."], _f.Dir.Path, gitEnv);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", seed, "commit", "-qm", "init"], _f.Dir.Path, gitEnv)).ExitCode);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", seed, "push", "-q", repo, "main"], _f.Dir.Path, gitEnv)).ExitCode);
        _f.Origin.GitRoot = Path.Combine(_f.Dir.Path, "repos");

        var env = new Dictionary<string, string>(_f.Env) { ["GIT_TERMINAL_PROMPT"] = "0" };
        var url = _f.HttpsUrl("/git/demo.git");
        var ls = await Cli.RunProgramAsync("git", ["ls-remote", url], work, env);
        Assert.True(ls.ExitCode == 0, ls.All);
        Assert.Contains("refs/heads/main", ls.Stdout, StringComparison.Ordinal);

        var clone = await Cli.RunProgramAsync("git", ["clone", "-q", url, Path.Combine(work, "clone")], work, env);
        Assert.True(clone.ExitCode == 0, clone.All);
        Assert.Equal("hello through proxyguard\n", await File.ReadAllTextAsync(Path.Combine(work, "clone", "README")));
    }
}
