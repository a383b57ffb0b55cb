using System.Text;

namespace ProxyGuard.Inspection.Tests;

public sealed class PolicyTests
{
    private static readonly string _token = Corpus.Expand("ghp_{A:36}", 21);

    private static Func<string, bool> Hosts(params string[] hosts) => h => hosts.Contains(h);

    [Fact]
    public void UnknownBuiltinIdIsRejectedAndSubsetsWork()
    {
        Assert.Throws<ArgumentException>(() => new ContentScanner(new ScannerOptions { BuiltinDetectorIds = ["no-such-detector"] }));
        var none = new ContentScanner(new ScannerOptions { BuiltinDetectorIds = [] });
        Assert.Empty(none.ScanText(_token, ScanLocation.Header, "h").Findings);
        var only = new ContentScanner(new ScannerOptions { BuiltinDetectorIds = ["aws-access-key-id"] });
        Assert.Empty(only.ScanText(_token, ScanLocation.Header, "h").Findings);
        Assert.NotEmpty(only.ScanText(Corpus.Expand("AKIA{U:16}", 1), ScanLocation.Header, "h").Findings);
    }

    [Fact]
    public void RedactRuleRewritesBodyAndText()
    {
        var scanner = new ContentScanner(new ScannerOptions
        {
            BuiltinDetectorIds = [],
            CustomRules = [new CustomRule("acme-internal-token", "acme_[a-z0-9]{32}", ContentAction.Redact, _ => true)],
        });
        var secret = "acme_" + Corpus.Expand("{h:32}", 5);
        var body = Encoding.UTF8.GetBytes("{\"a\":\"" + secret + "\",\"b\":\"x " + secret + "\"}");
        var result = scanner.ScanBody(body, null, "application/json", "api.example.com");
        Assert.False(result.Blocked);
        Assert.Equal(new Finding("acme-internal-token", ScanLocation.Body, ContentAction.Redact), Assert.Single(result.Findings));
        Assert.Equal("{\"a\":\"[REDACTED:acme-internal-token]\",\"b\":\"x [REDACTED:acme-internal-token]\"}", Encoding.UTF8.GetString(result.RewrittenBody!));

        // Compressed bodies come back identity-encoded.
        var gz = scanner.ScanBody(DecoderTests.Compress(body, "gzip"), "gzip", "application/json", "h");
        Assert.Equal(Encoding.UTF8.GetString(result.RewrittenBody!), Encoding.UTF8.GetString(gz.RewrittenBody!));

        var header = scanner.ScanText("Token " + secret, ScanLocation.Header, "h");
        Assert.Equal("Token [REDACTED:acme-internal-token]", header.RewrittenText);

        var query = scanner.ScanQuery("a=1&t=" + secret.Replace("_", "%5F", StringComparison.Ordinal) + "&z=2", "h");
        Assert.Equal("a=1&t=[REDACTED:acme-internal-token]&z=2", query.RewrittenText);

        // A match inside a base64 run redacts the whole run.
        var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("key is " + secret));
        var inRun = scanner.ScanBody(Encoding.UTF8.GetBytes("v=" + b64 + ";"), null, "text/plain", "h");
        Assert.Equal("v=[REDACTED:acme-internal-token];", Encoding.UTF8.GetString(inRun.RewrittenBody!));
    }

    [Fact]
    public void LogRuleDoesNotBlock()
    {
        var scanner = new ContentScanner(new ScannerOptions { CustomRules = [new CustomRule("watch", "internal-[0-9]+", ContentAction.Log, _ => true)] });
        var result = scanner.ScanText("id internal-42", ScanLocation.Header, "h");
        Assert.False(result.Blocked);
        Assert.Equal(ContentAction.Log, Assert.Single(result.Findings).Action);
        Assert.Null(result.RewrittenText);
    }

    [Fact]
    public void CustomRuleIsScopedToHosts()
    {
        var scanner = new ContentScanner(new ScannerOptions
        {
            CustomRules = [new CustomRule("acme", "acme_[a-z0-9]{8}", ContentAction.Deny, Hosts("api.acme.example"))],
        });
        Assert.True(scanner.ScanText("acme_abcdef12", ScanLocation.Header, "api.acme.example").Blocked);
        Assert.False(scanner.ScanText("acme_abcdef12", ScanLocation.Header, "other.example").Blocked);
    }

    [Fact]
    public void CustomRulesRunInLinearTime()
    {
        var scanner = new ContentScanner(new ScannerOptions { CustomRules = [new CustomRule("evil", "(a+)+$", ContentAction.Deny, _ => true)] });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        scanner.ScanText(new string('a', 50_000) + "!", ScanLocation.Header, "h");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
        Assert.Throws<ArgumentException>(() => new ContentScanner(new ScannerOptions { CustomRules = [new CustomRule("bad", "(", ContentAction.Deny, _ => true)] }));
    }

    [Fact]
    public void ExemptionSkipsDetectorTowardItsHosts()
    {
        var scanner = new ContentScanner(new ScannerOptions
        {
            Exemptions = [new Exemption(["github-token"], Hosts("api.github.com"))],
        });
        Assert.False(scanner.ScanText("token " + _token, ScanLocation.Header, "api.github.com").Blocked);
        Assert.True(scanner.ScanText("token " + _token, ScanLocation.Header, "evil.example").Blocked);
        Assert.True(scanner.ScanText("AKIA" + Corpus.Expand("{U:16}", 2), ScanLocation.Header, "api.github.com").Blocked);
    }

    [Fact]
    public void KnownSecretIsFoundRawEncodedAnywhere()
    {
        var value = "pA5s+w/0rd:" + Corpus.Expand("{A:20}", 9) + "&=%";
        var scanner = new ContentScanner(new ScannerOptions { KnownSecrets = [new KnownSecret("db", value)] });
        Assert.DoesNotContain(value, new KnownSecret("db", value).ToString(), StringComparison.Ordinal);

        string[] forms =
        [
            value,
            "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + value)),
            "x" + Convert.ToBase64String(Encoding.UTF8.GetBytes("ab" + value)).Replace('+', '-').Replace('/', '_'),
            Uri.EscapeDataString(value),
            "{\"p\":\"" + value.Replace("/", "\\/", StringComparison.Ordinal) + "\"}",
        ];
        foreach (var form in forms)
        {
            var header = scanner.ScanText(form, ScanLocation.Header, "h");
            Assert.True(header.Findings.Any(f => f.Detector == "vault-secret"), form);
            var body = scanner.ScanBody(Encoding.UTF8.GetBytes("data: " + form + "\n"), null, "text/plain", "h");
            Assert.True(body.Findings.Any(f => f.Detector == "vault-secret"), form);
        }

        Assert.True(scanner.ScanQuery("q=" + Uri.EscapeDataString(value), "h").Blocked);
        Assert.False(scanner.ScanText("pA5s+w/0rd", ScanLocation.Header, "h").Blocked);

        var exempt = new ContentScanner(new ScannerOptions
        {
            KnownSecrets = [new KnownSecret("db", value)],
            Exemptions = [new Exemption(["vault-secret"], Hosts("db.example"))],
        });
        Assert.False(exempt.ScanText(value, ScanLocation.Header, "db.example").Blocked);
    }

    /// <summary>
    /// vault-secret finds every form the shared real-value matcher (the secret gate's) knows: the two cannot disagree.
    /// The anchors alone missed HTML references, quoted-printable, base64 wrapped at 76 columns and two-level escapes.
    /// </summary>
    [Fact]
    public void KnownSecretIsFoundInEveryFormTheSharedMatcherKnows()
    {
        var value = "pA5s+w/0rd:" + Corpus.Expand("{A:20}", 9) + "&=%";
        var scanner = new ContentScanner(new ScannerOptions { KnownSecrets = [new KnownSecret("db", value)] });
        var matcher = new Matching.RealValueMatcher([new Matching.KnownValue(0, Encoding.UTF8.GetBytes(value))]);
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("{\"note\":\"the key is " + value + " and it rotates weekly, do not share it\"}"));
        (string Name, string Form)[] forms =
        [
            ("base64 wrapped at 76", string.Join("\n", base64.Chunk(76).Select(c => new string(c)))),
            ("base64 wrapped at 76, CRLF", string.Join("\r\n", base64.Chunk(76).Select(c => new string(c)))),
            ("HTML hex references", string.Concat(value.Select(c => $"&#x{(int)c:x2};"))),
            ("HTML decimal references", string.Concat(value.Select(c => $"&#{(int)c};"))),
            ("JSON \\u00XX", string.Concat(value.Select(c => $"\\u{(int)c:x4}"))),
            ("percent twice", string.Concat(value.Select(c => $"%25{(int)c:X2}"))),
            ("quoted-printable", string.Concat(value.Select(c => $"={(int)c:X2}"))),
            ("JSON in JSON", "{\"a\":\"{\\\"p\\\":\\\"" + value.Replace("/", "\\\\/", StringComparison.Ordinal) + "\\\"}\"}"),
        ];
        var failures = new List<string>();
        foreach (var (name, form) in forms)
        {
            var bytes = Encoding.UTF8.GetBytes("data: " + form + "\n");
            if (!matcher.TryFindFirst(bytes, out _))
            {
                // Only forms the shared matcher knows are in scope.
                failures.Add($"{name}: the shared matcher does not find it");
                continue;
            }

            if (!scanner.ScanBody(bytes, null, "text/plain", "h").Findings.Any(f => f.Detector == "vault-secret"))
            {
                failures.Add($"{name}: body");
            }

            if (!form.Contains('\n', StringComparison.Ordinal) && !scanner.ScanText(form, ScanLocation.Header, "h").Findings.Any(f => f.Detector == "vault-secret"))
            {
                failures.Add($"{name}: header");
            }

            if (!form.Contains('\n', StringComparison.Ordinal) && !scanner.ScanQuery("q=" + form.Replace("&", "%26", StringComparison.Ordinal), "h").Findings.Any(f => f.Detector == "vault-secret")
                && !scanner.ScanQuery("q=" + form, "h").Findings.Any(f => f.Detector == "vault-secret"))
            {
                failures.Add($"{name}: query");
            }
        }

        Assert.True(failures.Count == 0, string.Join("; ", failures));

        // The finding's shape is unchanged: detector id and location, never the value; exemptions still apply.
        var result = scanner.ScanBody(Encoding.UTF8.GetBytes(forms[2].Form), null, "text/html", "h");
        var finding = Assert.Single(result.Findings);
        Assert.Equal(new Finding("vault-secret", ScanLocation.Body, ContentAction.Deny), finding);
        Assert.DoesNotContain(value, finding.ToString(), StringComparison.Ordinal);
        var exempt = new ContentScanner(new ScannerOptions
        {
            KnownSecrets = [new KnownSecret("db", value)],
            Exemptions = [new Exemption(["vault-secret"], Hosts("db.example"))],
        });
        Assert.False(exempt.ScanBody(Encoding.UTF8.GetBytes(forms[2].Form), null, "text/html", "db.example").Blocked);
        Assert.True(exempt.ScanBody(Encoding.UTF8.GetBytes(forms[2].Form), null, "text/html", "other.example").Blocked);
    }

    [Fact]
    public void QueryValuesAreDecodedAndJoined()
    {
        var scanner = new ContentScanner(new ScannerOptions());
        Assert.True(scanner.ScanQuery("?t=" + _token, "h").Blocked);
        var encoded = string.Concat(_token.Select(c => $"%{(int)c:X2}"));
        Assert.Equal(ScanLocation.Query, Assert.Single(scanner.ScanQuery("t=" + encoded, "h").Findings).Location);

        // A token split across parameters.
        Assert.True(scanner.ScanQuery("a=" + _token[..20] + "&b=" + _token[20..], "h").Blocked);
        Assert.False(scanner.ScanQuery("page=2&sort=stars&q=proxy%20guard", "h").Blocked);
    }

    [Fact]
    public void HostNamesAndTheirLabelsAreScanned()
    {
        var scanner = new ContentScanner(new ScannerOptions());
        var key = Corpus.Expand("AKIA{U:16}", 3);
        Assert.True(scanner.ScanText(key.ToLowerInvariant() + ".evil.example", ScanLocation.Host, "evil.example").Blocked);
        Assert.True(scanner.ScanText(key[..10] + "." + key[10..] + ".evil.example", ScanLocation.Host, "evil.example").Blocked);
        var hex = Convert.ToHexString(Encoding.UTF8.GetBytes(_token)).ToLowerInvariant();
        Assert.True(scanner.ScanText(hex[..60] + "." + hex[60..] + ".evil.example", ScanLocation.Host, "evil.example").Blocked);
        Assert.Equal(ScanLocation.Host, scanner.ScanText(_token + ".evil.example", ScanLocation.Host, "x").Findings[0].Location);
        Assert.False(scanner.ScanText("api.github.com", ScanLocation.Host, "api.github.com").Blocked);
        Assert.False(scanner.ScanText("d1a2b3c4d5e6f7.cloudfront.net", ScanLocation.Host, "d1a2b3c4d5e6f7.cloudfront.net").Blocked);
    }

    [Fact]
    public void CleanResultIsShared()
    {
        var scanner = new ContentScanner(new ScannerOptions());
        Assert.Same(ScanResult.Clean, scanner.ScanText("hello world", ScanLocation.Header, "h"));
        Assert.Same(ScanResult.Clean, scanner.ScanBody(Encoding.UTF8.GetBytes("{\"a\":1}"), null, "application/json", "h"));
        Assert.False(ScanResult.Clean.Blocked);
    }
}
