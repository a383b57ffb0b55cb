namespace ProxyGuard.Policy.Tests;

public sealed class DecisionTests
{
    private const string Basic = """
        version: 1
        rules:
          - name: gh-read
            hosts: [api.github.com]
            methods: [get, HEAD]
            action: allow
          - name: gh-acme-write
            hosts: [api.github.com]
            methods: [POST]
            paths: ["/repos/acme/**"]
            action: allow
          - name: admin-deny
            hosts: [admin.example.com]
            paths: ["/admin/**"]
            action: deny
          - name: admin-rest
            hosts: [admin.example.com]
            action: allow
          - name: wild
            hosts: ["*.example.org"]
            action: allow
          - name: plain-http
            hosts: [insecure.example.net]
            ports: [80, 8080]
            action: allow
          - name: nets
            hosts: [203.0.113.0/24, "2001:db8::/32", 198.51.100.7]
            action: allow
          - name: ssh
            hosts: [github.com]
            ports: [22]
            protocol: tcp
            action: allow
          - name: pass
            hosts: [pinned.example.com]
            inspect: false
            action: allow
          - name: ws
            hosts: [ws.example.com]
            websocket: true
            action: allow
        """;

    private static readonly CompiledPolicy s_policy = TestPolicies.Load(Basic);

    [Theory]
    [InlineData("GET", "https", "api.github.com", 443, "/repos/x/y", true, "gh-read")]
    [InlineData("get", "https", "API.GITHUB.COM.", 443, "/", true, "gh-read")]
    [InlineData("HEAD", "https", "api.github.com", 443, "/", true, "gh-read")]
    [InlineData("DELETE", "https", "api.github.com", 443, "/repos/acme/x", false, "default")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/acme/x/issues", true, "gh-acme-write")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/acme", true, "gh-acme-write")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/acmex/y", false, "default")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/other/x", false, "default")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/acme/../other/x", false, "default")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/%61cme/x", true, "gh-acme-write")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/acme%2F..%2Fother/x", false, "default")]
    [InlineData("POST", "https", "api.github.com", 443, "/repos/acme/x?q=/repos/other", true, "gh-acme-write")]
    [InlineData("GET", "https", "api.github.com", 8443, "/", false, "default")]
    [InlineData("GET", "http", "api.github.com", 80, "/", true, "gh-read")]
    [InlineData("GET", "http", "api.github.com", 443, "/", false, "default")]
    // deny rule with paths, then allow without paths
    [InlineData("GET", "https", "admin.example.com", 443, "/admin/users", false, "admin-deny")]
    [InlineData("GET", "https", "admin.example.com", 443, "/public", true, "admin-rest")]
    [InlineData("GET", "https", "admin.example.com", 443, "/admin%2Fusers", false, "admin-deny")]
    [InlineData("GET", "https", "admin.example.com", 443, "//admin/users", false, "admin-deny")]
    // wildcard: any depth, never the apex
    [InlineData("GET", "https", "a.example.org", 443, "/", true, "wild")]
    [InlineData("GET", "https", "a.b.c.example.org", 443, "/", true, "wild")]
    [InlineData("GET", "https", "example.org", 443, "/", false, "default")]
    [InlineData("GET", "https", "evilexample.org", 443, "/", false, "default")]
    [InlineData("GET", "https", "example.org.evil.com", 443, "/", false, "default")]
    // ports
    [InlineData("GET", "http", "insecure.example.net", 80, "/", true, "plain-http")]
    [InlineData("GET", "http", "insecure.example.net", 8080, "/", true, "plain-http")]
    [InlineData("GET", "https", "insecure.example.net", 443, "/", false, "default")]
    // IPs and CIDRs match IP literals in any spelling
    [InlineData("GET", "https", "203.0.113.9", 443, "/", true, "nets")]
    [InlineData("GET", "https", "3405803785", 443, "/", true, "nets")]
    [InlineData("GET", "https", "0xcb.0.0x71.9", 443, "/", true, "nets")]
    [InlineData("GET", "https", "[2001:db8::5]", 443, "/", true, "nets")]
    [InlineData("GET", "https", "[::ffff:203.0.113.9]", 443, "/", true, "nets")]
    [InlineData("GET", "https", "198.51.100.7", 443, "/", true, "nets")]
    [InlineData("GET", "https", "198.51.100.8", 443, "/", false, "default")]
    // tunnel-only rules never match HTTP requests
    [InlineData("GET", "https", "pinned.example.com", 443, "/", false, "default")]
    [InlineData("GET", "https", "bad..host", 443, "/", false, "default")]
    public void DecidesRequests(string method, string scheme, string host, int port, string path, bool allowed, string rule)
    {
        var decision = s_policy.DecideRequest(null, scheme, host, port, method, path);
        Assert.Equal(allowed, decision.Allowed);
        Assert.Equal(rule, decision.Rule);
    }

    [Fact]
    public void AmbiguousPathFallsThroughAllowPathRulesWithReason()
    {
        var decision = s_policy.DecideRequest(null, "https", "api.github.com", 443, "POST", "/repos/acme%2Fx");
        Assert.False(decision.Allowed);
        Assert.Equal("ambiguous-path", decision.Reason);

        // an ambiguous path can still match a rule without paths
        var read = s_policy.DecideRequest(null, "https", "api.github.com", 443, "GET", "/repos/acme%2Fx");
        Assert.True(read.Allowed);
        Assert.Equal("gh-read", read.Rule);

        var denied = s_policy.DecideRequest(null, "https", "admin.example.com", 443, "GET", "/x%5C..%5Cadmin");
        Assert.Equal("admin-deny", denied.Rule);
        Assert.Equal("ambiguous-path", denied.Reason);
    }

    [Fact]
    public void WebSocketOnlyWhereOptedIn()
    {
        Assert.True(s_policy.DecideRequest(null, "https", "ws.example.com", 443, "GET", "/socket").WebSocketAllowed);
        Assert.True(s_policy.DecideRequest(null, "wss", "ws.example.com", 443, "GET", "/socket").WebSocketAllowed);
        Assert.False(s_policy.DecideRequest(null, "https", "api.github.com", 443, "GET", "/").WebSocketAllowed);
    }

    [Theory]
    [InlineData("api.github.com", 443, true, "gh-read", TunnelMode.Intercept)]
    [InlineData("api.github.com", 80, false, "default", TunnelMode.Intercept)]
    [InlineData("admin.example.com", 443, true, "admin-rest", TunnelMode.Intercept)]
    [InlineData("github.com", 22, true, "ssh", TunnelMode.Tcp)]
    [InlineData("github.com", 443, false, "default", TunnelMode.Intercept)]
    [InlineData("pinned.example.com", 443, true, "pass", TunnelMode.Passthrough)]
    [InlineData("insecure.example.net", 8080, true, "plain-http", TunnelMode.Intercept)]
    [InlineData("insecure.example.net", 443, false, "default", TunnelMode.Intercept)]
    [InlineData("nowhere.example", 443, false, "default", TunnelMode.Intercept)]
    [InlineData("127.1", 443, false, "default", TunnelMode.Intercept)]
    [InlineData("[fe80::1%eth0]", 443, false, "default", TunnelMode.Intercept)]
    public void DecidesConnect(string host, int port, bool allowed, string rule, TunnelMode mode)
    {
        var decision = s_policy.DecideConnect(null, host, port);
        Assert.Equal(allowed, decision.Allowed);
        Assert.Equal(rule, decision.Rule);
        Assert.Equal(mode, decision.Mode);
    }

    [Fact]
    public void ConnectWalksRulesWithConstraints()
    {
        var policy = TestPolicies.Load("""
            version: 1
            rules:
              - name: deny-delete
                hosts: [api.example.com]
                methods: [DELETE]
                action: deny
              - name: read
                hosts: [api.example.com]
                methods: [GET]
                action: allow
              - name: block-all
                hosts: [api.example.com]
                action: deny
              - name: deny-only-paths
                hosts: [other.example.com]
                paths: ["/x"]
                action: deny
              - name: hard-deny
                hosts: [blocked.example.com]
                action: deny
              - name: later-allow
                hosts: [blocked.example.com]
                action: allow
            """);
        var connect = policy.DecideConnect(null, "api.example.com", 443);
        Assert.True(connect.Allowed);
        Assert.Equal("read", connect.Rule);
        Assert.Equal(TunnelMode.Intercept, connect.Mode);
        Assert.Equal("deny-delete", policy.DecideRequest(null, "https", "api.example.com", 443, "DELETE", "/").Rule);
        Assert.Equal("block-all", policy.DecideRequest(null, "https", "api.example.com", 443, "PUT", "/").Rule);

        Assert.False(policy.DecideConnect(null, "other.example.com", 443).Allowed);
        var hard = policy.DecideConnect(null, "blocked.example.com", 443);
        Assert.False(hard.Allowed);
        Assert.Equal("hard-deny", hard.Rule);
    }

    [Fact]
    public void DefaultAllowAppliesToConnectAndRequests()
    {
        var policy = TestPolicies.Load("""
            version: 1
            default: allow
            rules:
              - name: no-admin
                hosts: ["*"]
                paths: ["/admin/**"]
                action: deny
              - name: no-evil
                hosts: [evil.example.com]
                action: deny
            """);
        Assert.Equal(RuleAction.Allow, policy.Default);
        var connect = policy.DecideConnect(null, "anything.example.com", 443);
        Assert.True(connect.Allowed);
        Assert.Equal("default", connect.Rule);
        Assert.False(policy.DecideConnect(null, "evil.example.com", 443).Allowed);
        Assert.True(policy.DecideConnect(null, "anything.example.com", 8443).Allowed);
        Assert.True(policy.DecideRequest(null, "https", "a.example.com", 443, "GET", "/x").Allowed);
        Assert.False(policy.DecideRequest(null, "https", "a.example.com", 443, "GET", "/admin/x").Allowed);
    }

    [Fact]
    public void ClientScopedRules()
    {
        var policy = TestPolicies.Load("""
            version: 1
            clients:
              - id: agent-1
                token: env:A1
                networks: [127.0.0.0/8, "::1/128"]
              - id: agent-2
                token: file:/run/secrets/a2
            rules:
              - name: only-1
                clients: [agent-1]
                hosts: [one.example.com]
                action: allow
              - name: everyone
                hosts: [all.example.com]
                action: allow
            """);
        Assert.True(policy.RequiresAuthentication);
        Assert.True(policy.DecideRequest("agent-1", "https", "one.example.com", 443, "GET", "/").Allowed);
        Assert.False(policy.DecideRequest("agent-2", "https", "one.example.com", 443, "GET", "/").Allowed);
        Assert.False(policy.DecideRequest(null, "https", "one.example.com", 443, "GET", "/").Allowed);
        Assert.True(policy.DecideConnect("agent-1", "one.example.com", 443).Allowed);
        Assert.False(policy.DecideConnect("agent-2", "one.example.com", 443).Allowed);
        Assert.True(policy.DecideRequest("agent-2", "https", "all.example.com", 443, "GET", "/").Allowed);

        var client = policy.FindClient("agent-1")!;
        Assert.Equal("env:A1", client.TokenReference);
        Assert.True(client.AllowsSource(System.Net.IPAddress.Parse("127.0.0.5")));
        Assert.True(client.AllowsSource(System.Net.IPAddress.Parse("::ffff:127.0.0.5")));
        Assert.True(client.AllowsSource(System.Net.IPAddress.IPv6Loopback));
        Assert.False(client.AllowsSource(System.Net.IPAddress.Parse("10.0.0.1")));
        Assert.True(policy.FindClient("agent-2")!.AllowsSource(System.Net.IPAddress.Parse("10.0.0.1")));
        Assert.Null(policy.FindClient("AGENT-1"));
    }

    [Fact]
    public void AuditModeStillReportsDenials()
    {
        var policy = TestPolicies.Load("""
            version: 1
            mode: audit
            rules:
              - name: ok
                hosts: [ok.example.com]
                action: allow
            """);
        Assert.Equal(PolicyMode.Audit, policy.Mode);
        Assert.False(policy.DecideRequest(null, "https", "no.example.com", 443, "GET", "/").Allowed);
        Assert.False(policy.DecideConnect(null, "no.example.com", 443).Allowed);
        var evaluation = PolicyEvaluator.Evaluate(policy, null, "GET", new TargetUrl("https", "no.example.com", 443, "/"));
        Assert.True(evaluation.AuditOnly);
        Assert.False(PolicyEvaluator.Evaluate(policy, null, "GET", new TargetUrl("https", "ok.example.com", 443, "/")).AuditOnly);
    }

    [Fact]
    public void ExposesCompiledSections()
    {
        var policy = TestPolicies.Load("""
            version: 1
            network:
              allow_destinations: [10.1.0.0/16, "fd00::/8"]
            content:
              builtin: [github-token, aws-access-key]
              scan: [body]
              max_body: 512KiB
              over_limit: allow
              rules:
                - name: acme
                  pattern: 'acme_[a-z0-9]{32}'
                  action: redact
                  hosts: ["*.acme.example"]
              exempt:
                - { detectors: [github-token, acme], hosts: [api.github.com] }
            secrets:
              - name: gh
                value: vault:secret/data/ci/github#token
                placeholder: PG_SECRET_GITHUB_0123456789
                sandbox_env: GITHUB_TOKEN
                hosts: [api.github.com, "*.github.com"]
                in: [headers, body]
              - name: plain
                value: env:PLAIN
                hosts: [example.com]
            tls:
              upstream_ca_files: [certs/corp.pem, /etc/ssl/extra.pem]
            """);
        Assert.True(policy.Network.IsAllowedDestination(System.Net.IPAddress.Parse("10.1.2.3")));
        Assert.True(policy.Network.IsAllowedDestination(System.Net.IPAddress.Parse("::ffff:10.1.2.3")));
        Assert.True(policy.Network.IsAllowedDestination(System.Net.IPAddress.Parse("fd00::1")));
        Assert.False(policy.Network.IsAllowedDestination(System.Net.IPAddress.Parse("10.2.0.1")));

        Assert.Equal(["github-token", "aws-access-key"], policy.Content.BuiltinDetectorIds);
        Assert.False(policy.Content.ScanHeaders);
        Assert.False(policy.Content.ScanQuery);
        Assert.True(policy.Content.ScanBody);
        Assert.Equal(512 * 1024, policy.Content.MaxBody);
        Assert.True(policy.Content.OverLimitAllow);
        var rule = Assert.Single(policy.Content.Rules);
        Assert.Equal(ContentRuleAction.Redact, rule.Action);
        Assert.Matches(rule.Regex, "x acme_0123456789abcdef0123456789abcdef y");
        Assert.True(rule.Hosts.Matches("a.acme.example"));
        Assert.False(rule.Hosts.Matches("acme.example"));
        Assert.True(policy.Content.IsExempt("acme", "api.github.com"));
        Assert.False(policy.Content.IsExempt("acme", "github.com"));

        var gh = policy.Secrets[0];
        Assert.Equal("vault:secret/data/ci/github#token", gh.ValueReference);
        Assert.Equal("PG_SECRET_GITHUB_0123456789", gh.Placeholder);
        Assert.Equal("GITHUB_TOKEN", gh.SandboxEnv);
        Assert.True(gh.Hosts.Matches("uploads.github.com"));
        Assert.True(gh.InHeaders);
        Assert.False(gh.InQuery);
        Assert.True(gh.InBody);
        var plain = policy.Secrets[1];
        Assert.Null(plain.Placeholder);
        Assert.True(plain.InHeaders);
        Assert.True(plain.InQuery);
        Assert.False(plain.InBody);

        Assert.Equal(Path.GetFullPath("certs/corp.pem"), policy.Tls.UpstreamCaFiles[0]);
        Assert.Equal("/etc/ssl/extra.pem", policy.Tls.UpstreamCaFiles[1]);
        Assert.Equal(64, policy.Sha256.Length);
        Assert.Equal("test.yaml", policy.FilePath);
    }

    [Fact]
    public void DefaultsWhenSectionsAreAbsent()
    {
        var policy = TestPolicies.Load("version: 1\n");
        Assert.Equal(PolicyMode.Enforce, policy.Mode);
        Assert.Equal(RuleAction.Deny, policy.Default);
        Assert.Empty(policy.Rules);
        Assert.Empty(policy.Clients);
        Assert.False(policy.RequiresAuthentication);
        Assert.Null(policy.Content.BuiltinDetectorIds);
        Assert.True(policy.Content.ScanHeaders && policy.Content.ScanQuery && policy.Content.ScanBody);
        Assert.Equal(8L * 1024 * 1024, policy.Content.MaxBody);
        Assert.False(policy.Content.OverLimitAllow);
        Assert.Empty(policy.Network.AllowDestinations);
        Assert.Empty(policy.Tls.UpstreamCaFiles);
        Assert.Empty(TestPolicies.Load("version: 1\ncontent: {builtin: none}\n").Content.BuiltinDetectorIds!);
        var decision = policy.DecideRequest(null, "https", "example.com", 443, "GET", "/");
        Assert.Equal(new RequestDecision(false, "default", "no-rule-matched", false), decision);
    }

    [Fact]
    public void RuleMetadataIsKept()
    {
        var rule = s_policy.Rules[1];
        Assert.Equal("gh-acme-write", rule.Name);
        Assert.Equal(7, rule.Line);
        Assert.Equal(["api.github.com"], rule.Hosts);
        Assert.Equal(["POST"], rule.Methods);
        Assert.Equal(["/repos/acme/**"], rule.Paths);
        Assert.True(rule.HasRequestConstraints);
        Assert.Equal(["GET", "HEAD"], s_policy.Rules[0].Methods);
        var ssh = s_policy.Rules.Single(r => r.Name == "ssh");
        Assert.Equal("tcp", ssh.Protocol);
        Assert.Equal(TunnelMode.Tcp, ssh.TunnelMode);
        Assert.False(ssh.Inspect);
        Assert.Equal(TunnelMode.Passthrough, s_policy.Rules.Single(r => r.Name == "pass").TunnelMode);
    }

    [Fact]
    public async Task ConcurrentDecisionsAreConsistent()
    {
        var tasks = Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 2000; i++)
            {
                Assert.True(s_policy.DecideRequest(null, "https", "api.github.com", 443, "POST", "/repos/acme/x").Allowed);
                Assert.False(s_policy.DecideRequest(null, "https", "api.github.com", 443, "POST", "/repos/b/x").Allowed);
            }
        }));
        await Task.WhenAll(tasks);
    }
}
