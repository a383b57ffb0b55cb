using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Policy.Grants;

namespace ProxyGuard.Policy.Tests;

/// <summary>
/// Issue 19: <c>policy check</c> performs the checks <c>run</c> performs (one routine, <see cref="PolicyLoader.Validate"/>),
/// and port 443 never admits cleartext through an allow rule while a deny rule for it still denies.
/// </summary>
public sealed class CheckRunParityTests : IDisposable
{
    private static readonly PolicyLoadOptions s_options = new() { CheckFilePermissions = false };
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("pg-parity-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void Validate_reports_every_CA_file_run_would_refuse_at_its_entry()
    {
        File.WriteAllText(Path.Combine(_dir.FullName, "good.pem"), SelfSignedPem());
        File.WriteAllText(Path.Combine(_dir.FullName, "empty.pem"), string.Empty);
        File.WriteAllText(Path.Combine(_dir.FullName, "text.pem"), "this is not a certificate\n");
        var path = Path.Combine(_dir.FullName, "p.yaml");
        File.WriteAllText(path, "version: 1\ntls:\n  upstream_ca_files:\n    - good.pem\n    - missing.pem\n    - empty.pem\n    - text.pem\n");

        // Loading alone does not read the files; the shared validation does, as run does.
        Assert.True(PolicyLoader.LoadFile(path, s_options).Success);
        var result = PolicyLoader.Validate(path, s_options);
        Assert.False(result.Success);
        Assert.Equal([(5, 7), (6, 7), (7, 7)], result.Diagnostics.Select(d => (d.Line, d.Column)));
        Assert.All(result.Diagnostics, d => Assert.Equal(path, d.File));
        Assert.StartsWith("tls.upstream_ca_files[1]: ", result.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("holds no PEM certificate", result.Diagnostics[1].Message, StringComparison.Ordinal);
        Assert.Contains("holds no PEM certificate", result.Diagnostics[2].Message, StringComparison.Ordinal);

        // The proxy's own loading of the roots refuses the same file, at the same entry.
        var tls = PolicyLoader.LoadFile(path, s_options).Policy!.Tls;
        var onlyEmpty = new TlsSpec { UpstreamCaFiles = [tls.UpstreamCaFiles[2]], UpstreamCaFilePositions = [tls.UpstreamCaFilePositions[2]] };
        var refused = Assert.Throws<PolicyFileException>(() => onlyEmpty.LoadUpstreamRoots(path, TimeSpan.FromSeconds(5))).Diagnostic;
        Assert.Equal((6, 7), (refused.Line, refused.Column));

        // Only good files: the policy passes, and its roots load.
        File.WriteAllText(path, "version: 1\ntls:\n  upstream_ca_files: [good.pem]\n");
        var ok = PolicyLoader.Validate(path, s_options);
        Assert.True(ok.Success, string.Join("\n", ok.Diagnostics));
        var roots = ok.Policy!.Tls.LoadUpstreamRoots(path, TimeSpan.FromSeconds(5));
        Assert.Single(roots);
        foreach (var root in roots)
        {
            root.Dispose();
        }
    }

    [Fact]
    public void Validate_reports_CA_files_also_when_the_policy_has_other_problems()
    {
        var path = Path.Combine(_dir.FullName, "both.yaml");
        File.WriteAllText(path, "version: 1\nmode: strict\ntls:\n  upstream_ca_files: [missing.pem]\n");
        var result = PolicyLoader.Validate(path, s_options);
        Assert.Equal([(2, 7), (4, 23)], result.Diagnostics.Select(d => (d.Line, d.Column)));
        Assert.StartsWith("tls.upstream_ca_files[0]: ", result.Diagnostics[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_secret_binding_no_allow_rule_reaches_is_a_warning_at_its_host()
    {
        var result = PolicyLoader.LoadText("""
            version: 1
            rules:
              - name: gh
                hosts: [api.github.com]
                action: allow
            secrets:
              - name: partly
                value: env:A
                hosts: [api.github.com, uploads.example.org, "*.github.com"]
            """, "test.yaml");
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        var w = Assert.Single(result.Warnings);
        Assert.Equal((9, 29), (w.Line, w.Column));
        Assert.Equal("warning: secrets[0].hosts[1]: secret 'partly' is bound to uploads.example.org, which no allow rule reaches: it is never substituted toward it (add a rule for it or remove it from the secret's hosts)", w.Message);
    }

    [Fact]
    public void Validate_keeps_the_syntax_errors_and_warnings_of_loading()
    {
        var path = Path.Combine(_dir.FullName, "bad.yaml");
        File.WriteAllText(path, "version: 1\nmode: strict\n");
        var bad = PolicyLoader.Validate(path, s_options);
        Assert.Equal($"{path}:2:7: mode: invalid value 'strict'; expected enforce | audit", Assert.Single(bad.Diagnostics).ToString());

        File.WriteAllText(path, "version: 1\nrules:\n  - name: a\n    hosts: [x.example.com]\n    paths: [\"/v1/.*\"]\n    action: allow\n");
        var warned = PolicyLoader.Validate(path, s_options);
        Assert.True(warned.Success);
        Assert.Single(warned.Warnings);
    }

    [Theory]
    [InlineData("deny")]
    [InlineData("allow")]
    public void A_deny_rule_for_port_443_also_denies_cleartext_to_it(string defaultAction)
    {
        var policy = TestPolicies.Load($"""
            version: 1
            default: {defaultAction}
            rules:
              - name: no-443
                hosts: [x.example.com]
                ports: [443]
                action: deny
              - name: everything
                hosts: ["*"]
                ports: [80, 443, 8080]
                action: allow
            """);
        var plain = PolicyDecider.Decide(policy, new DecisionInput(null, "http", "x.example.com", 443, "GET", "/"));
        Assert.Equal((Verdict.Deny, "no-443", "rule-deny"), (plain.Verdict, plain.Rule, plain.Reason.Name));
        var tls = PolicyDecider.Decide(policy, new DecisionInput(null, "https", "x.example.com", 443, "GET", "/"));
        Assert.Equal((Verdict.Deny, "no-443"), (tls.Verdict, tls.Rule));
    }

    [Fact]
    public void Cleartext_to_port_443_gets_its_own_reason_and_no_grant_lifts_it()
    {
        var policy = TestPolicies.Load("version: 1\nrules:\n  - name: web\n    hosts: [x.example.com]\n    ports: [443]\n    action: allow\n");
        var input = new DecisionInput("agent", "http", "x.example.com", 443, "GET", "/");
        var decision = PolicyDecider.Decide(policy, input);
        Assert.Equal((Verdict.Deny, "default", "plain-http-on-https-port", 403), (decision.Verdict, decision.Rule, decision.Reason.Name, decision.Status));
        Assert.Same(Reasons.PlainHttpOnHttpsPort, Reasons.Find("plain-http-on-https-port"));

        var now = DateTimeOffset.UtcNow;
        Assert.Null(Grant.TryCreate("g1", "*", "x.example.com:443", null, null, TimeSpan.FromHours(1), "test", "tester", now, out var grant));
        var grants = new GrantSet([grant!]);
        Assert.Equal(Verdict.Deny, PolicyDecider.Decide(policy, input, grants, now).Verdict);
        Assert.Equal(Verdict.Allow, PolicyDecider.Decide(policy, input with { Scheme = "https" }, grants, now).Verdict);

        // A request no rule would have taken anyway keeps the general reason; default: allow still allows.
        Assert.Equal("no-rule-matched", PolicyDecider.Decide(policy, new DecisionInput(null, "http", "y.example.com", 443, "GET", "/")).Reason.Name);
        var open = TestPolicies.Load("version: 1\ndefault: allow\nrules:\n  - name: web\n    hosts: [x.example.com]\n    ports: [443]\n    action: allow\n");
        Assert.Equal(("default", "default-allow"), (PolicyDecider.Decide(open, input).Rule, PolicyDecider.Decide(open, input).Reason.Name));
    }

    [Theory]
    [InlineData("/api/\\d+", "contains '\\', which is not glob syntax", "/api/*")]
    [InlineData("/files/\\.git/**", "contains '\\', which is not glob syntax", "/files/*/**")]
    [InlineData("^/api/.*$", "must start with '/'", "/api/**")]
    public void Regex_syntax_in_a_path_glob_is_an_error_that_says_globs_are_not_regexes(string glob, string problem, string meant)
    {
        var d = Assert.Single(TestPolicies.Errors($"version: 1\nrules:\n  - name: a\n    hosts: [x.example.com]\n    paths: ['{glob}']\n    action: allow\n"));
        Assert.Equal((5, 13), (d.Line, d.Column));
        Assert.Contains(problem, d.Message, StringComparison.Ordinal);
        Assert.Contains("paths are globs, not regular expressions", d.Message, StringComparison.Ordinal);
        Assert.EndsWith($"did you mean '{meant}'?", d.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rules:\n  - name: a\n    hosts: [\"[::1]:443\"]\n    action: allow\n", "a host pattern has no port; put the port in 'ports' (e.g. ports: [443])")]
    [InlineData("rules:\n  - name: a\n    hosts: [\"*.example.com:*\"]\n    action: allow\n", "a host pattern has no port; put the port in 'ports' (e.g. ports: [443])")]
    [InlineData("rules:\n  - name: a\n    hosts: [api.example.com/v1]\n    action: allow\n", "a host pattern has no path; write the host ('api.example.com') and put the path in 'paths' (e.g. paths: [\"/v1/**\"])")]
    [InlineData("secrets:\n  - name: s\n    value: env:X\n    hosts: [\"api.example.com:443\"]\n", "a host pattern has no port; hosts here apply to every port, so write 'api.example.com'")]
    [InlineData("network:\n  allow_destinations: [\"10.0.0.1:443\"]\n", "an address here has no port (it admits every port); write '10.0.0.1'")]
    public void A_port_or_path_inside_a_host_says_where_it_belongs(string body, string expected)
    {
        var d = Assert.Single(TestPolicies.Errors("version: 1\n" + body));
        Assert.EndsWith(expected, d.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("IPv6", d.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("host names are not allowed", d.Message, StringComparison.Ordinal);
    }

    private static string SelfSignedPem()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=ProxyGuard test root", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return cert.ExportCertificatePem() + "\n";
    }
}
