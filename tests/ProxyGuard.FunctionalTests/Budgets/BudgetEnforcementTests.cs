using System.Net;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Policy;

namespace ProxyGuard.FunctionalTests.Budgets;

/// <summary>
/// <c>budgets:</c> on one proxy: over a request or upload-byte budget a request is refused with 429
/// <c>budget-exceeded</c> naming the budget, never reaches the origin, and is recorded; audit mode forwards it.
/// </summary>
[Collection("proxy")]
public sealed class BudgetEnforcementTests : IClassFixture<PolicyOrigin>
{
    private const string Body = """
        rules:
          - name: origin
            hosts: [localhost, 127.0.0.1]
            ports: [{HTTPS}, {HTTP}]
            action: allow
        budgets:
          - name: five-a-minute
            match: {hosts: [localhost], rule: origin}
            requests: 5/1m
          - name: small-uploads
            match: {hosts: [127.0.0.1]}
            per: [host]
            upload_bytes: 1000/1h
        """;

    private readonly PolicyOrigin _o;

    public BudgetEnforcementTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    [Fact]
    public async Task Over_a_request_budget_the_client_gets_429_budget_exceeded_the_origin_sees_nothing_and_the_event_names_the_budget()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Body);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        for (var i = 0; i < 5; i++)
        {
            using var ok = await client.GetAsync(_o.HttpsUrl($"/echo/budget-ok-{i}"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var refused = await client.GetAsync(_o.HttpsUrl("/echo/budget-sixth"));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("deny", Header(refused, "X-ProxyGuard-Decision"));
        Assert.Equal("budget-exceeded", Header(refused, "X-ProxyGuard-Reason"));
        Assert.Equal("five-a-minute", Header(refused, "X-ProxyGuard-Rule"));
        Assert.Contains("budget 'five-a-minute' allows 5 requests per 1m", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(_o.OriginSaw("budget-sixth"));

        // Plain HTTP to the same host counts in the same budget (the key is client x host, the client its address).
        using var plain = await client.GetAsync(_o.HttpUrl("/echo/budget-plain"));
        Assert.Equal(HttpStatusCode.TooManyRequests, plain.StatusCode);

        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("reason").GetString() == "budget-exceeded");
        Assert.Equal("deny", e.GetProperty("decision").GetString());
        Assert.Equal("five-a-minute", e.GetProperty("rule").GetString());
        Assert.Equal(429, e.GetProperty("status").GetInt32());

        // Another host is another key (and not matched by this budget at all).
        using var other = await client.GetAsync(_o.HttpsUrl("/echo/budget-other", "127.0.0.1"));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task Over_an_upload_budget_a_body_that_does_not_fit_is_refused_before_it_is_sent_and_one_that_fits_still_goes()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, Body);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        for (var i = 0; i < 2; i++)
        {
            using var ok = await client.PostAsync(_o.HttpsUrl($"/echo/upload-ok-{i}", "127.0.0.1"), new StringContent(new string('a', 400)));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var refused = await client.PostAsync(_o.HttpsUrl("/echo/upload-third", "127.0.0.1"), new StringContent(new string('b', 400)));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("small-uploads", Header(refused, "X-ProxyGuard-Rule"));
        Assert.False(_o.OriginSaw("upload-third"));

        using var fits = await client.PostAsync(_o.HttpsUrl("/echo/upload-small", "127.0.0.1"), new StringContent(new string('c', 200)));
        Assert.Equal(HttpStatusCode.OK, fits.StatusCode);
        using var get = await client.GetAsync(_o.HttpsUrl("/echo/upload-get", "127.0.0.1"));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode); // no body: an upload budget alone does not refuse it
    }

    [Fact]
    public async Task In_audit_mode_a_request_over_budget_is_forwarded_and_recorded_as_audit_deny()
    {
        using var dir = new TempDir();
        await using var proxy = await _o.StartProxyAsync(dir, "mode: audit\n" + Body);
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        for (var i = 0; i < 6; i++)
        {
            using var response = await client.GetAsync(_o.HttpsUrl($"/echo/budget-audit-{i}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.True(_o.OriginSaw("budget-audit-5"));
        var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("reason").GetString() == "budget-exceeded");
        Assert.Equal("audit-deny", e.GetProperty("decision").GetString());
        Assert.Equal("five-a-minute", e.GetProperty("rule").GetString());
        Assert.Contains("budget-audit-5", e.GetProperty("path").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_explain_shows_the_budget_that_would_count_a_request_and_policy_test_checks_it()
    {
        using var dir = new TempDir();
        var policy = dir.Write("policy.yaml", _o.Policy(Body));
        var explain = await Cli.RunAsync(dir.Path, "policy", "explain", policy, "POST", _o.HttpsUrl("/x"));
        Assert.True(explain.ExitCode == 0, explain.Stdout + explain.Stderr);
        Assert.Contains("budgets:   'five-a-minute' (line ", explain.Stdout, StringComparison.Ordinal);
        Assert.Contains("5 requests per 1m, counted for client=(source address) host=localhost; past it: deny (budget-exceeded)", explain.Stdout, StringComparison.Ordinal);

        var cases = dir.Write("cases.yaml", _o.Ports("""
            cases:
              - name: counted
                url: https://localhost:{HTTPS}/x
                expect: {decision: allow, budgets: [five-a-minute]}
              - name: wrong
                url: https://127.0.0.1:{HTTPS}/x
                expect: {decision: allow, budgets: [five-a-minute]}
            """));
        var test = await Cli.RunAsync(dir.Path, "policy", "test", policy, cases);
        Assert.Equal(1, test.ExitCode);
        Assert.Contains("PASS counted", test.Stdout, StringComparison.Ordinal);
        Assert.Contains("expected budgets [five-a-minute], got [small-uploads]", test.Stdout, StringComparison.Ordinal);
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;
}
