using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// Each client runs with an environment made only of what <c>proxyguard env</c> printed (plus PATH, an
/// empty HOME and LANG) and reaches a TLS origin through the proxy by a host name that only the proxy
/// can resolve (<c>origin.test</c>), so a request that bypassed the proxy could not succeed.
/// </summary>
[Collection("proxy")]
public sealed class EnvOnlyClientTests : IClassFixture<OriginFixture>
{
    private readonly OriginFixture _f;

    public EnvOnlyClientTests(OriginFixture fixture)
    {
        _f = fixture;
    }

    private string Url(string path) => _f.HttpsUrl(path, "origin.test");

    private void AssertReachedOrigin(string path) =>
        Assert.Contains(_f.Origin.Received, r => r.EndsWith(" " + path, StringComparison.Ordinal));

    [Fact]
    public void Env_prints_every_documented_trust_variable()
    {
        foreach (var name in new[]
                 {
                     "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                     "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT", "NPM_CONFIG_CAFILE", "AWS_CA_BUNDLE", "PROXYGUARD_CA_CERT", "PROXYGUARD_SPKI_SHA256",
                 })
        {
            Assert.True(_f.Env.ContainsKey(name), name);
        }

        Assert.Equal(string.Empty, _f.Env["NO_PROXY"]);
        var bundle = File.ReadAllText(_f.Env["SSL_CERT_FILE"]);
        var ca = File.ReadAllText(_f.Env["PROXYGUARD_CA_CERT"]).Trim();
        Assert.Contains(ca, bundle, StringComparison.Ordinal);
        if (File.Exists("/etc/ssl/certs/ca-certificates.crt"))
        {
            // Combined bundle: system roots too, for clients whose CA file replaces the system store.
            Assert.True(bundle.Split("BEGIN CERTIFICATE").Length > 10, "bundle should hold the system roots as well");
        }
    }

    [RequiresToolsFact("curl")]
    public async Task Curl_with_env_only()
    {
        var result = await Isolated.RunAsync("curl", ["-sS", "--fail", Url("/echo/iso-curl")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("/echo/iso-curl", result.Stdout, StringComparison.Ordinal);
        AssertReachedOrigin("/echo/iso-curl");
    }

    [RequiresToolsFact("curl")]
    public async Task Curl_bypassing_the_proxy_cannot_reach_the_origin_name()
    {
        var result = await Isolated.RunAsync("curl", ["-sS", "--noproxy", "*", "--max-time", "20", Url("/echo/iso-bypass")], _f.Dir.Path, _f.Env);
        Assert.NotEqual(0, result.ExitCode);
        Assert.DoesNotContain(_f.Origin.Received, r => r.Contains("iso-bypass", StringComparison.Ordinal));
    }

    [RequiresToolsFact("python3")]
    public async Task Python_urllib_with_env_only()
    {
        const string script = "import urllib.request,sys\nprint(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())";
        var result = await Isolated.RunAsync("python3", ["-c", script, Url("/echo/iso-urllib")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains("/echo/iso-urllib", result.Stdout, StringComparison.Ordinal);
    }

    [RequiresToolsFact("python3")]
    public async Task Python_requests_with_env_only_when_installed()
    {
        const string script = """
            import sys
            try:
                import requests
            except ImportError:
                print("requests-missing"); sys.exit(0)
            r = requests.get(sys.argv[1], timeout=60)
            print(r.status_code, r.text)
            """;
        var result = await Isolated.RunAsync("python3", ["-c", script, Url("/echo/iso-requests")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        if (!result.Stdout.StartsWith("requests-missing", StringComparison.Ordinal))
        {
            Assert.StartsWith("200 ", result.Stdout, StringComparison.Ordinal);
            AssertReachedOrigin("/echo/iso-requests");
        }
    }

    [RequiresToolsFact("node")]
    public async Task Node_with_env_only()
    {
        // Node >= 24 honours NODE_USE_ENV_PROXY=1 (printed by env) in fetch; older Node needs an agent
        // that sends CONNECT to HTTPS_PROXY. Either way the trust comes from NODE_EXTRA_CA_CERTS.
        const string script = """
            const [major] = process.versions.node.split('.').map(Number);
            const target = new URL(process.argv[1]);
            if (major >= 24) {
              fetch(target).then(async r => { console.log(r.status + ' ' + await r.text()); }).catch(e => { console.error(e); process.exit(3); });
            } else {
              const http = require('http'), https = require('https'), tls = require('tls');
              const proxy = new URL(process.env.HTTPS_PROXY);
              const req = http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: `${target.hostname}:${target.port}` });
              req.on('connect', (res, socket) => {
                if (res.statusCode !== 200) { console.error('CONNECT ' + res.statusCode); process.exit(2); }
                https.get({ host: target.hostname, port: target.port, path: target.pathname, createConnection: () => tls.connect({ socket, servername: target.hostname }) }, r => {
                  let body = ''; r.on('data', d => body += d); r.on('end', () => { console.log(r.statusCode + ' ' + body); process.exit(0); });
                }).on('error', e => { console.error(e.message); process.exit(3); });
              });
              req.on('error', e => { console.error(e.message); process.exit(4); });
              req.end();
            }
            """;
        var result = await Isolated.RunAsync("node", ["-e", script, Url("/echo/iso-node")], _f.Dir.Path, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.StartsWith("200 ", result.Stdout, StringComparison.Ordinal);
        AssertReachedOrigin("/echo/iso-node");
    }

    [RequiresToolsFact("npm", Optional = true)]
    public async Task Npm_ping_with_env_only()
    {
        // npm takes its proxy from HTTPS_PROXY and its CA file from NPM_CONFIG_CAFILE.
        var result = await Isolated.RunAsync("npm", ["ping", "--registry", Url("/npm/")], _f.Dir.Path, _f.Env,
            new Dictionary<string, string> { ["NPM_CONFIG_UPDATE_NOTIFIER"] = "false", ["NPM_CONFIG_FUND"] = "false", ["NPM_CONFIG_AUDIT"] = "false" });
        Assert.True(result.ExitCode == 0, result.All);
        Assert.Contains(_f.Origin.Received, r => r.StartsWith("GET /npm/-/ping", StringComparison.Ordinal));
    }

    [RequiresToolsFact("git")]
    public async Task Git_ls_remote_with_env_only()
    {
        var root = Path.Combine(_f.Dir.Path, "iso-repos");
        var repo = Path.Combine(root, "iso.git");
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["init", "-q", "--bare", "-b", "main", repo], _f.Dir.Path, null)).ExitCode);
        Assert.Equal(0, (await Cli.RunProgramAsync("git", ["-C", repo, "symbolic-ref", "HEAD", "refs/heads/main"], _f.Dir.Path, null)).ExitCode);
        _f.Origin.GitRoot = root;
        var result = await Isolated.RunAsync("git", ["ls-remote", Url("/git/iso.git")], _f.Dir.Path, _f.Env,
            new Dictionary<string, string> { ["GIT_TERMINAL_PROMPT"] = "0" });
        Assert.True(result.ExitCode == 0, result.All);
        AssertReachedOrigin("/git/iso.git/info/refs?service=git-upload-pack");
    }

    [Fact]
    public async Task Dotnet_httpclient_configured_from_env_output_only()
    {
        // What a .NET agent does with the env output: the proxy from HTTPS_PROXY, trust from the
        // SSL_CERT_FILE bundle (which .NET on Linux also reads at start-up for its default store).
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(_f.Env["SSL_CERT_FILE"]);
        using var handler = new SocketsHttpHandler
        {
            Proxy = new WebProxy(_f.Env["HTTPS_PROXY"]),
            UseProxy = true,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                    {
                        return false;
                    }

                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    return chain.Build(leaf);
                },
            },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        using var response = await client.GetAsync(Url("/echo/iso-dotnet"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("/echo/iso-dotnet", doc.RootElement.GetProperty("target").GetString());
    }

    [RequiresToolsFact("java", "keytool", Optional = true)]
    public async Task Java_httpclient_with_keytool_truststore()
    {
        // The keytool step from docs/getting-started-agent-operator.md, then java.net.http.HttpClient
        // with the proxy taken from HTTPS_PROXY.
        var store = Path.Combine(_f.Dir.Path, "proxyguard-truststore.p12");
        File.Delete(store);
        var import = await Isolated.RunAsync("keytool",
            ["-importcert", "-noprompt", "-alias", "proxyguard", "-file", _f.Env["PROXYGUARD_CA_CERT"], "-keystore", store, "-storetype", "PKCS12", "-storepass", "changeit"],
            _f.Dir.Path, _f.Env);
        Assert.True(import.ExitCode == 0, import.All);
        var source = Path.Combine(_f.Dir.Path, "Fetch.java");
        await File.WriteAllTextAsync(source, """
            import java.net.*;
            import java.net.http.*;

            public class Fetch {
                public static void main(String[] args) throws Exception {
                    URI proxy = URI.create(System.getenv("HTTPS_PROXY"));
                    HttpClient client = HttpClient.newBuilder()
                        .proxy(ProxySelector.of(new InetSocketAddress(proxy.getHost(), proxy.getPort())))
                        .build();
                    HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
                    System.out.println(r.statusCode() + " " + r.body());
                }
            }
            """);
        var result = await Isolated.RunAsync("java",
            ["-Djavax.net.ssl.trustStore=" + store, "-Djavax.net.ssl.trustStorePassword=changeit", "-Djavax.net.ssl.trustStoreType=PKCS12", source, Url("/echo/iso-java")],
            _f.Dir.Path, _f.Env, timeout: TimeSpan.FromMinutes(4));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.StartsWith("200 ", result.Stdout, StringComparison.Ordinal);
        AssertReachedOrigin("/echo/iso-java");

        // Without the truststore the JDK's own roots do not know the ProxyGuard CA (the env output's
        // JAVA_TOOL_OPTIONS names the truststore, so it is left out here).
        var withoutJavaOptions = _f.Env.Where(kv => kv.Key != "JAVA_TOOL_OPTIONS").ToDictionary(kv => kv.Key, kv => kv.Value);
        var untrusted = await Isolated.RunAsync("java", [source, Url("/echo/iso-java-untrusted")], _f.Dir.Path, withoutJavaOptions, timeout: TimeSpan.FromMinutes(4));
        Assert.NotEqual(0, untrusted.ExitCode);
        Assert.Contains("PKIX", untrusted.All, StringComparison.Ordinal);
    }

    [RequiresToolsFact("go", Optional = true)]
    public async Task Go_net_http_with_env_only()
    {
        // Go's net/http honours HTTPS_PROXY and SSL_CERT_FILE by default.
        var dir = Path.Combine(_f.Dir.Path, "gofetch");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "main.go"), """
            package main

            import (
                "fmt"
                "io"
                "net/http"
                "os"
            )

            func main() {
                r, err := http.Get(os.Args[1])
                if err != nil {
                    fmt.Fprintln(os.Stderr, err)
                    os.Exit(3)
                }
                defer r.Body.Close()
                b, _ := io.ReadAll(r.Body)
                fmt.Println(r.StatusCode, string(b))
            }
            """);
        var goEnv = new Dictionary<string, string>
        {
            ["GOCACHE"] = Path.Combine(_f.Dir.Path, "gocache"), ["GOPATH"] = Path.Combine(_f.Dir.Path, "gopath"), ["GO111MODULE"] = "off",
        };
        var build = await Cli.RunProgramAsync("go", ["build", "-o", Path.Combine(dir, "fetch"), Path.Combine(dir, "main.go")], dir, goEnv, TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, build.All);
        var result = await Isolated.RunAsync(Path.Combine(dir, "fetch"), [Url("/echo/iso-go")], dir, _f.Env);
        Assert.True(result.ExitCode == 0, result.All);
        Assert.StartsWith("200 ", result.Stdout, StringComparison.Ordinal);
    }
}
