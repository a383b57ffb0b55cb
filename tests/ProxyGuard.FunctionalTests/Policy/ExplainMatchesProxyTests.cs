using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// One truth: the same requests (headers, bodies, secrets, content rules) go through <c>policy explain</c>, through
/// <c>policy test</c> (as a cases file) and through the live proxy, and the decision, rule, reason, findings and
/// secrets agree in the CLI output, the cases run, the X-ProxyGuard-* headers and the event, in enforce and audit mode.
/// The cases file is written in the event's words (an audit-mode event's <c>audit-deny</c> included).
/// </summary>
[Collection("proxy")]
public sealed partial class ExplainMatchesProxyTests : IClassFixture<PolicyOrigin>
{
    private const string ApiValue = "pgsynthetic-explain-0123456789abcdef";

    private readonly PolicyOrigin _o;

    public ExplainMatchesProxyTests(PolicyOrigin origin)
    {
        _o = origin;
    }

    // The reasons audit mode turns into audit-deny (docs/policy.md, "Decisions and reasons").
    private static readonly HashSet<string> s_auditable = new(StringComparer.Ordinal) { "rule-deny", "no-rule-matched", "ambiguous-path", "content-finding", "plain-http-on-https-port" };

    public sealed record Case(string Name, string Method, string Url, string[] Headers, string? Body, string Verdict, string Rule, string Reason)
    {
        /// <summary>The secrets substituted (none unless given).</summary>
        public string[] Secrets { get; init; } = [];

        /// <summary>The detector or content-rule ids found: the deciding one for a content finding, else none.</summary>
        public string[] Findings { get; init; } = Reason == "content-finding" ? [Rule] : [];
    }

    [Theory]
    [InlineData("enforce")]
    [InlineData("audit")]
    public async Task Explain_test_and_the_live_proxy_agree_on_decision_rule_reason_findings_and_secrets(string mode)
    {
        using var dir = new TempDir();
        var audit = mode == "audit";
        var policy = _o.Ports($"""
            version: 1
            mode: {mode}
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: all
              rules:
                - name: internal-marker
                  pattern: "ACME-INTERNAL-[0-9][0-9][0-9][0-9]"
                  action: deny
            tls:
              upstream_ca_files: [{_o.OriginCaPath}]
            rules:
              - name: private
                hosts: [localhost]
                ports: [{"{HTTPS}"}, {"{HTTP}"}]
                paths: ["/echo/private/**"]
                action: deny
              - name: lan
                hosts: ["10.1.2.3"]
                ports: [{"{HTTP}"}]
                action: allow
              - name: echo
                hosts: [localhost]
                ports: [{"{HTTPS}"}, {"{HTTP}"}, 443]
                methods: [GET, POST]
                paths: ["/echo/**"]
                action: allow
            secrets:
              - name: api
                value: env:PG_EXPLAIN_API
                sandbox_env: API_TOKEN
                hosts: [localhost]
                in: [headers]
            """);
        var environment = new Dictionary<string, string> { ["PG_EXPLAIN_API"] = ApiValue };
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), policy, null, environment);
        var placeholder = (await proxy.EnvAsync())["API_TOKEN"];
        var aws = "AKIA" + "Z7QW4XKL2MNB5VCD";

        Case[] cases =
        [
            new("allowed", "GET", _o.HttpsUrl("/echo/x1"), [], null, "allow", "echo", "rule-allow"),
            new("substituted", "GET", _o.HttpsUrl("/echo/x2"), [$"Authorization: Bearer {placeholder}"], null, "allow", "echo", "rule-allow") { Secrets = ["api"] },
            new("no rule (method)", "PUT", _o.HttpsUrl("/echo/x3"), [], null, "deny", "default", "no-rule-matched"),
            new("deny rule", "GET", _o.HttpsUrl("/echo/private/x4"), [], null, "deny", "private", "rule-deny"),
            new("ambiguous path (matches the deny rule with paths)", "GET", _o.HttpsUrl("/echo/a%2Fb/x5"), [], null, "deny", "private", "ambiguous-path"),
            new("plain no rule", "GET", _o.HttpUrl("/other/x6"), [], null, "deny", "default", "no-rule-matched"),
            new("credential in header", "GET", _o.HttpsUrl("/echo/x7"), [$"X-Debug: {aws}"], null, "deny", "aws-access-key-id", "content-finding"),
            new("credential in path", "GET", _o.HttpsUrl($"/echo/{aws}/x8"), [], null, "deny", "aws-access-key-id", "content-finding"),
            new("placeholder in body, headers-only secret", "POST", _o.HttpsUrl("/echo/x9"), ["Content-Type: text/plain"], "token " + placeholder, "deny", "secrets", "secret-misuse"),
            new("placeholder as query name", "GET", _o.HttpsUrl($"/echo/x10?{placeholder}=1"), [], null, "deny", "secrets", "placeholder-position"),
            new("real value sent (the content scan knows it)", "GET", _o.HttpsUrl("/echo/x11"), [$"Authorization: Bearer {ApiValue}"], null, "deny", "vault-secret", "content-finding"),
            new("credential in body", "POST", _o.HttpsUrl("/echo/x13"), ["Content-Type: application/json"], $"{{\"k\":\"{aws}\"}}", "deny", "aws-access-key-id", "content-finding"),
            new("custom content rule in body", "POST", _o.HttpsUrl("/echo/x14"), ["Content-Type: text/plain"], "see ACME-INTERNAL-1234", "deny", "internal-marker", "content-finding"),
            new("plain http: no rule for the path", "POST", _o.HttpUrl("/other/x15"), ["Content-Type: text/plain"], "hello", "deny", "default", "no-rule-matched"),
            new("plain http to port 443, which the rule lists (443 is HTTPS only)", "GET", "http://localhost:443/echo/x16", [], null, "deny", "default", "plain-http-on-https-port"),
            new("placeholder over plain http", "GET", _o.HttpUrl("/echo/x12"), [$"Authorization: Bearer {placeholder}"], null, "deny", "secrets", "secret-plain-http"),
            new("a private address the rules allow (network guard, no DNS needed)", "GET", _o.HttpUrl("/echo/x17", "10.1.2.3"), [], null, "deny", "network", "private-destination"),
        ];

        if (audit)
        {
            // Audit mode forwards what the rules and the content scan would deny; secret checks stay enforced.
            // A real secret value is the exception: the finding is recorded, then the secret gate refuses it anyway.
            cases = cases.Select(c => c.Rule == "vault-secret" ? c with { Rule = "secrets", Reason = "secret-real-value" }
                : c.Verdict == "deny" && s_auditable.Contains(c.Reason) ? c with { Verdict = "audit-deny" } : c).ToArray();
        }

        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            // explain never sees a real value: it is written {{value:api}} there (as in a cases file), and the
            // secret's environment variable is not set for it (its answer must not depend on the author's shell).
            var cli = await ExplainAsync(proxy, c, ApiValue);
            var (status, headers) = await SendAsync(client, c);
            var marker = new Uri(c.Url).AbsolutePath.Split('/')[^1];
            var e = await proxy.WaitForEventAsync(ev => ev.GetProperty("kind").GetString() == "request"
                && ev.TryGetProperty("path", out var p) && p.GetString() is { } path && path.Contains(marker, StringComparison.Ordinal), 10000);
            var recorded = (Verdict: e.GetProperty("decision").GetString(), Rule: e.GetProperty("rule").GetString(), Reason: e.GetProperty("reason").GetString());
            var recordedFindings = e.TryGetProperty("findings", out var f) ? f.EnumerateArray().Select(x => x.GetProperty("detector").GetString()!).Distinct().Order().ToArray() : [];
            var recordedSecrets = e.TryGetProperty("secretsInjected", out var si) ? si.EnumerateArray().Select(x => x.GetString()!).Order().ToArray() : [];

            void Check(string source, string? verdict, string? rule, string? reason)
            {
                if (verdict != c.Verdict || rule != c.Rule || reason != c.Reason)
                {
                    failures.Add($"{c.Name}: {source} said {verdict}/{rule}/{reason}, expected {c.Verdict}/{c.Rule}/{c.Reason}");
                }
            }

            Check("explain", cli.Verdict, cli.Rule, cli.Reason);
            Check("event", recorded.Verdict, recorded.Rule, recorded.Reason);
            void Same(string what, string[] expected, string[] actual)
            {
                if (!expected.Order().SequenceEqual(actual.Order()))
                {
                    failures.Add($"{c.Name}: {what} [{string.Join(", ", actual)}], expected [{string.Join(", ", expected)}]");
                }
            }

            Same("explain findings", c.Findings, cli.Findings);
            Same("event findings", c.Findings, recordedFindings);
            Same("explain secrets", c.Secrets, cli.Secrets);
            Same("event secretsInjected", c.Secrets, recordedSecrets);
            // The secret is bound to localhost: a request there gets the warning, one elsewhere does not.
            var bound = new Uri(c.Url).Host == "localhost";
            if (bound != cli.Warnings.Any(w => w.StartsWith("secret 'api'", StringComparison.Ordinal) && w.Contains("PG_EXPLAIN_API", StringComparison.Ordinal)))
            {
                failures.Add($"{c.Name}: explain should {(bound ? string.Empty : "not ")}say that secret 'api' does not resolve in its shell and where it looked: [{string.Join(" | ", cli.Warnings)}]");
            }
            if (c.Verdict == "deny" && e.TryGetProperty("secretsInjected", out var injected) && injected.GetArrayLength() > 0)
            {
                failures.Add($"{c.Name}: a deny event records secretsInjected {injected}");
            }

            if (c.Verdict != "allow" && c.Rule == "default" && !cli.Nearest.Any(n => n.StartsWith("rule 'echo'", StringComparison.Ordinal)))
            {
                failures.Add($"{c.Name}: explain names no near-miss rule: [{string.Join(" | ", cli.Nearest)}]");
            }
            if (c.Verdict == "deny")
            {
                Check($"headers ({status})", headers.GetValueOrDefault("x-proxyguard-decision"), headers.GetValueOrDefault("x-proxyguard-rule"),
                    headers.GetValueOrDefault("x-proxyguard-reason"));
            }
            else if (c.Verdict == "audit-deny")
            {
                // Forwarded: whatever the upstream answered, the proxy did not refuse it.
                if (headers.GetValueOrDefault("x-proxyguard-decision") == "deny" || status is 403)
                {
                    failures.Add($"{c.Name}: audit mode refused it ({status}, {headers.GetValueOrDefault("x-proxyguard-reason")})");
                }
            }
            else if (status != 200)
            {
                failures.Add($"{c.Name}: the proxy answered {status}");
            }
        }

        // The same table as a cases file: placeholders and the real value written as markers, run offline.
        var casesFile = Path.Combine(proxy.Directory, "table.cases.yaml");
        await File.WriteAllTextAsync(casesFile, CasesYaml(cases, placeholder, ApiValue));
        var test = await Cli.RunProgramAsync("dotnet", [ProxyProcess.DllPath, "policy", "test", proxy.PolicyPath, casesFile], proxy.Directory, new Dictionary<string, string>());
        if (test.ExitCode != 0 || !test.Stdout.Contains($"{cases.Length} passed, 0 failed", StringComparison.Ordinal))
        {
            failures.Add("policy test disagrees:\n" + test.All);
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>The table as a cases file; the placeholder and the real value become {{placeholder:api}} and {{value:api}}.</summary>
    private static string CasesYaml(IEnumerable<Case> cases, string placeholder, string realValue)
    {
        static string Q(string text) => JsonSerializer.Serialize(text);
        string Mark(string text) => text.Replace(placeholder, "{{placeholder:api}}", StringComparison.Ordinal).Replace(realValue, "{{value:api}}", StringComparison.Ordinal);
        var sb = new StringBuilder("cases:\n");
        foreach (var c in cases)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  - name: {Q(c.Name)}\n    method: {c.Method}\n    url: {Q(Mark(c.Url))}\n");
            if (c.Headers.Length > 0)
            {
                sb.Append("    headers:\n");
                foreach (var header in c.Headers)
                {
                    var colon = header.IndexOf(':', StringComparison.Ordinal);
                    sb.Append(CultureInfo.InvariantCulture, $"      {Q(header[..colon].Trim())}: {Q(Mark(header[(colon + 1)..].Trim()))}\n");
                }
            }

            if (c.Body is not null)
            {
                sb.Append(CultureInfo.InvariantCulture, $"    body: {Q(Mark(c.Body))}\n");
            }

            // In the event's words: decision (allow, deny or audit-deny), rule and reason.
            sb.Append(CultureInfo.InvariantCulture, $"    expect: {{ decision: {c.Verdict}, rule: {Q(c.Rule)}, reason: {c.Reason}, findings: [{string.Join(", ", c.Findings.Select(Q))}], secrets: [{string.Join(", ", c.Secrets.Select(Q))}] }}\n");
        }

        return sb.ToString();
    }

    private sealed record Explanation(string? Verdict, string? Rule, string? Reason, List<string> Nearest, string[] Findings, string[] Secrets, List<string> Warnings);

    private static async Task<Explanation> ExplainAsync(ProxyProcess proxy, Case c, string realValue)
    {
        string Mark(string text) => text.Replace(realValue, "{{value:api}}", StringComparison.Ordinal);
        var args = new List<string> { ProxyProcess.DllPath, "policy", "explain", proxy.PolicyPath, c.Method, Mark(c.Url), "--data-dir", proxy.DataDirectory };
        foreach (var header in c.Headers)
        {
            args.AddRange(["-H", Mark(header)]);
        }

        if (c.Body is not null)
        {
            var bodyFile = Path.Combine(proxy.Directory, $"body-{Guid.NewGuid():N}.txt");
            await File.WriteAllTextAsync(bodyFile, Mark(c.Body));
            args.AddRange(["--body-file", bodyFile]);
        }

        var result = await Cli.RunProgramAsync("dotnet", args, proxy.Directory, new Dictionary<string, string>());
        string? Field(string name) => Regex.Match(result.Stdout, $"^{name}:\\s+(\\S+)", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value : null;
        List<string> Lines(string name) => Regex.Matches(result.Stdout, $"^{name}:\\s+(.+)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value.TrimEnd()).ToList();
        var findingsLine = Lines("findings").FirstOrDefault() ?? "?";
        var findings = findingsLine == "none" ? [] : findingsLine.Split("; ").Select(item => item.Split(' ')[0]).Distinct().ToArray();
        var secretsLine = Lines("secrets").FirstOrDefault() ?? "?";
        var secrets = secretsLine == "none injected" ? [] : secretsLine.Split(", ");
        return new Explanation(Field("decision"), Field("rule"), Field("reason"), Lines("nearest"), findings, secrets, Lines("warning"));
    }

    private static async Task<(int Status, Dictionary<string, string> Headers)> SendAsync(HttpClient client, Case c)
    {
        using var request = new HttpRequestMessage(new HttpMethod(c.Method), c.Url);
        if (c.Body is not null)
        {
            request.Content = new StringContent(c.Body, Encoding.UTF8);
        }

        foreach (var header in c.Headers)
        {
            var colon = header.IndexOf(':', StringComparison.Ordinal);
            var (name, value) = (header[..colon].Trim(), header[(colon + 1)..].Trim());
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
            {
                request.Content?.Headers.Remove("Content-Type");
                request.Content?.Headers.TryAddWithoutValidation(name, value);
            }
            else
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }

        using var response = await client.SendAsync(request);
        var headers = response.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => string.Join(",", h.Value), StringComparer.Ordinal);
        return ((int)response.StatusCode, headers);
    }
}
