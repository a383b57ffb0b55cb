using System.Text;

namespace ProxyGuard.Inspection.Tests;

/// <summary>Base64 wrapped at any line length (issue 15 class 10) is decoded and scanned.</summary>
public sealed class WrappedBase64Tests
{
    private const string Vault = "wrapped-vault-secret-value-4711";
    private static readonly string _awsKey = Corpus.Expand("AKIA{U:16}", 3);
    private static readonly string _githubToken = Corpus.Expand("ghp_{A:36}", 7);

    private static readonly ContentScanner _byteScanner = new(new ScannerOptions { KnownSecrets = [new KnownSecret("v", Vault)] });

    private static readonly ContentScanner _charScanner = new(new ScannerOptions
    {
        KnownSecrets = [new KnownSecret("v", Vault)],
        CustomRules = [new CustomRule("acme", "acme_[a-z0-9]{32}", ContentAction.Deny, _ => true)],
    });

    public static TheoryData<int, string, bool> Widths()
    {
        var data = new TheoryData<int, string, bool>();
        foreach (var width in new[] { 76, 64, 40, 32, 20, 16, 12, 8, 4 })
        {
            foreach (var newline in new[] { "\n", "\r\n" })
            {
                data.Add(width, newline == "\n" ? "LF" : "CRLF", true);
                data.Add(width, newline == "\n" ? "LF" : "CRLF", false);
            }
        }

        return data;
    }

    internal static string Wrap(string plain, int width, string newline)
    {
        var encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes(plain));
        var builder = new StringBuilder();
        for (var i = 0; i < encoded.Length; i += width)
        {
            builder.Append(encoded.AsSpan(i, Math.Min(width, encoded.Length - i))).Append(newline);
        }

        return builder.ToString();
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void ACloudKeyInWrappedBase64IsFound(int width, string newlineName, bool bytePath)
    {
        var newline = newlineName == "LF" ? "\r\n"[1..] : "\r\n";
        var scanner = bytePath ? _byteScanner : _charScanner;
        var plain = "[default]\naws_access_key_id = " + _awsKey + "\nregion = eu-west-1\n";
        var body = "attachment:" + newline + Wrap(plain, width, newline) + newline + "end" + newline;
        var result = scanner.ScanBody(Encoding.ASCII.GetBytes(body), null, "text/plain", "h");
        Assert.Contains(result.Findings, f => f.Detector == "aws-access-key-id");

        var token = scanner.ScanBody(Encoding.ASCII.GetBytes(Wrap("token: " + _githubToken + " and some more words", width, newline)), null, "text/plain", "h");
        Assert.Contains(token.Findings, f => f.Detector == "github-token");

        var vault = scanner.ScanBody(Encoding.ASCII.GetBytes("x" + newline + Wrap("the value " + Vault + " here", width, newline)), null, "text/plain", "h");
        Assert.Contains(vault.Findings, f => f.Detector == "vault-secret");
    }

    [Fact]
    public void APrivateKeyWrappedAtEightIsFound()
    {
        var pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----\n";
        var direct = _byteScanner.ScanBody(Encoding.ASCII.GetBytes(pem), null, "text/plain", "h");
        var detector = Assert.Single(direct.Findings).Detector;
        foreach (var width in new[] { 4, 8, 16 })
        {
            var result = _byteScanner.ScanBody(Encoding.ASCII.GetBytes(Wrap(pem, width, "\n")), null, "text/plain", "h");
            Assert.Contains(result.Findings, f => f.Detector == detector);
        }
    }

    [Fact]
    public void ShortLinesThatAreNotBase64AreLeftAlone()
    {
        // Word lists and short code lines look like wrapped base64 to the finder but do not decode to text.
        var body = string.Concat(Enumerable.Repeat("abcd\nefgh\nijkl\nmnop\nqrst\nuvwx\n", 50));
        var result = _byteScanner.ScanBody(Encoding.ASCII.GetBytes(body), null, "text/plain", "h");
        Assert.Null(result.Error);
        Assert.Empty(result.Findings);
    }
}
