using ProxyGuard.FunctionalTests.Infrastructure;
using static ProxyGuard.FunctionalTests.Policy.PolicyClients;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// Issue 19, ports: port 443 means HTTPS. Through a running proxy, a plain-HTTP request to port 443 is not let through
/// by an allow rule that lists 443 (reason <c>plain-http-on-https-port</c>, the same in the response, the event and
/// <c>policy explain</c>), while the rule's other port still carries plain HTTP; a deny rule for port 443 denies
/// cleartext to it even under <c>default: allow</c>.
/// </summary>
[Collection("proxy")]
public sealed class HttpsPortTests : IClassFixture<PolicyOrigin>
{
    private readonly PolicyOrigin _o;

    public HttpsPortTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task An_allow_rule_for_port_443_does_not_admit_plain_http_to_it()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, """
            rules:
              - name: web
                hosts: [localhost]
                ports: [443, {HTTP}]
                action: allow
            """);

        // The rule's other port carries plain HTTP (control: the rule matches this client, host and method).
        var other = await CurlAsync(proxy, "GET", _o.HttpUrl("/echo/port-other"));
        Assert.True(other.Status == 200, other.ToString());

        var cleartext = await CurlAsync(proxy, "GET", "http://localhost:443/echo/port-443-plain");
        Assert.True(cleartext.Status == 403, cleartext.ToString());
        Assert.Equal("deny", cleartext.Header("X-ProxyGuard-Decision"));
        Assert.Equal("default", cleartext.Header("X-ProxyGuard-Rule"));
        Assert.Equal("plain-http-on-https-port", cleartext.Header("X-ProxyGuard-Reason"));
        Assert.DoesNotContain("proxyguard grant", cleartext.Body, StringComparison.Ordinal);
        var recorded = await proxy.WaitForEventAsync(e => e.GetProperty("path").GetString() == "/echo/port-443-plain");
        Assert.Equal("plain-http-on-https-port", recorded.GetProperty("reason").GetString());

        // policy explain gives the same decision, rule and reason, and names the rule that would have taken it.
        var explain = await Cli.RunAsync(dir.Path, "policy", "explain", proxy.PolicyPath, "GET", "http://localhost:443/echo/port-443-plain");
        Assert.True(explain.ExitCode == 1, explain.All);
        Assert.Matches(@"(?m)^rule:\s+default$", explain.Stdout);
        Assert.Matches(@"(?m)^reason:\s+plain-http-on-https-port$", explain.Stdout);
        Assert.Matches(@"(?m)^nearest:\s+rule 'web' \(line \d+\): .*port 443 is for HTTPS only", explain.Stdout);
    }

    [Fact]
    public async Task A_deny_rule_for_port_443_denies_plain_http_to_it_under_default_allow()
    {
        using var dir = new TempDir();
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), """
            version: 1
            default: allow
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            rules:
              - name: no-443
                hosts: [localhost]
                ports: [443]
                action: deny
            """);

        var cleartext = await CurlAsync(proxy, "GET", "http://localhost:443/echo/deny-443-plain");
        Assert.True(cleartext.Status == 403, cleartext.ToString());
        Assert.Equal("no-443", cleartext.Header("X-ProxyGuard-Rule"));
        Assert.Equal("rule-deny", cleartext.Header("X-ProxyGuard-Reason"));

        // Other ports still fall to the default (control).
        var other = await CurlAsync(proxy, "GET", _o.HttpUrl("/echo/deny-443-other"));
        Assert.True(other.Status == 200, other.ToString());
    }
}
