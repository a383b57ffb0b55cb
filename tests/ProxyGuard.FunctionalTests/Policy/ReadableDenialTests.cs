using ProxyGuard.FunctionalTests.Ecosystem;
using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Readable denials: a CONNECT the policy refuses is accepted, TLS is finished with a leaf for the refused name, and
/// the first request inside gets the 403 explanation with its headers; nothing is forwarded and one event is recorded.
/// Off by default: the refusal is then the 403 before TLS.
/// </summary>
[Collection("proxy")]
public sealed class ReadableDenialTests : IClassFixture<PolicyOrigin>
{
    private const string Rules = """
        rules:
          - name: origin
            hosts: [localhost]
            ports: [{HTTPS}]
            action: allow
        """;

    private readonly PolicyOrigin _o;

    public ReadableDenialTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [RequiresToolsFact("curl", "python3")]
    public async Task Curl_and_python_read_the_explanation_of_a_refused_connect()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), _o.Policy(_o.Ports(Rules)), ["--readable-denials", "on"]);

        // curl with only the proxy CA: the body is the explanation, not "CONNECT tunnel failed".
        var curl = await Cli.RunProgramAsync("curl", ["-sS", "--max-time", "60", "--proxy", proxy.ProxyUrl, "--cacert", proxy.CaPath, "-D", "-",
            "https://denied.test/readable-curl"], proxy.Directory, null);
        Assert.True(curl.ExitCode == 0, curl.All);
        Assert.Contains("HTTP/1.1 403", curl.Stdout, StringComparison.Ordinal);
        Assert.Contains("X-ProxyGuard-Reason: no-rule-allows-host-port", curl.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("ProxyGuard blocked this request: CONNECT to denied.test:443 is not allowed by the policy", curl.Stdout, StringComparison.Ordinal);
        Assert.Contains("proxyguard grant --client '*' --host denied.test --for 30m", curl.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("tunnel failed", curl.All, StringComparison.OrdinalIgnoreCase);

        // Python urllib trusting only the proxy CA: HTTPError 403 with the reason header.
        const string script = """
            import ssl, sys, urllib.request, urllib.error
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": sys.argv[1]}), urllib.request.HTTPSHandler(context=ctx))
            try:
                opener.open("https://denied.test/readable-python", timeout=60)
                print("no error")
            except urllib.error.HTTPError as e:
                print(e.code, e.headers.get("X-ProxyGuard-Reason"), e.read().decode()[:60])
            """;
        var python = await Cli.RunProgramAsync("python3", ["-c", script, proxy.ProxyUrl, proxy.CaPath], proxy.Directory, null);
        Assert.True(python.ExitCode == 0, python.All);
        Assert.StartsWith("403 no-rule-allows-host-port ProxyGuard blocked this request", python.Stdout, StringComparison.Ordinal);

        // One event per refused CONNECT, as before; the inner request is not a second event and nothing was forwarded.
        await proxy.WaitForEventAsync(e => e.GetProperty("host").GetString() == "denied.test" && e.GetProperty("kind").GetString() == "connect");
        await Task.Delay(300);
        var events = (await proxy.EventsAsync()).Where(e => e.GetProperty("host").GetString() == "denied.test").ToList();
        Assert.Equal(2, events.Count);
        Assert.All(events, e =>
        {
            Assert.Equal("deny", e.GetProperty("decision").GetString());
            Assert.Equal("connect", e.GetProperty("kind").GetString());
            Assert.Equal(403, e.GetProperty("status").GetInt32());
        });
    }

    [RequiresToolsFact("curl")]
    public async Task Off_by_default_refuses_before_tls_as_before()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Rules);
        var connect = await RawHeadAsync(proxy, "CONNECT denied.test:443 HTTP/1.1\r\nHost: denied.test:443\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 403 ", connect, StringComparison.Ordinal);
        Assert.Contains("X-ProxyGuard-Reason: no-rule-allows-host-port\r\n", connect, StringComparison.Ordinal);
    }
}
