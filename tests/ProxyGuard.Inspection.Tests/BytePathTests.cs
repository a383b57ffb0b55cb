using System.Text;
using System.Text.Json;
using ProxyGuard.Inspection.Scanning;

namespace ProxyGuard.Inspection.Tests;

/// <summary>
/// The byte fast path for bodies (SIMD prefilter on bytes, byte-level base64/escape/@ passes) against the char path,
/// which the scanner still uses when a policy rule is active: both must find the same detectors everywhere,
/// including literals split across 32-byte vector blocks, at the start and end of a buffer, and in mixed case.
/// </summary>
public sealed class BytePathTests
{
    private const string SecretValue = "synthetic-vault-value-Q7xZ";

    private static readonly KnownSecret[] _secrets = [new("s", SecretValue)];

    private static readonly ContentScanner _bytes = new(new ScannerOptions { KnownSecrets = _secrets });

    // A rule that never matches forces the char path without adding findings.
    private static readonly ContentScanner _chars = new(new ScannerOptions
    {
        KnownSecrets = _secrets,
        CustomRules = [new CustomRule("never", "\u0001never\u0002", ContentAction.Deny, _ => true)],
    });

    public static IEnumerable<object[]> PositiveSample() =>
        Corpus.Positives().Where((_, i) => i % 3 == 0);

    [Theory]
    [MemberData(nameof(PositiveSample))]
    public void PositiveIsFoundAtEveryOffsetAcrossVectorBlocksAndBufferEnds(string detector, string template, int seed)
    {
        var value = Corpus.Expand(template, seed);
        for (var offset = 0; offset <= 70; offset++)
        {
            var prefix = new string('.', offset);
            AssertSame(detector, true, prefix + value + " tail text after the value.");
            AssertSame(detector, true, prefix + value);
        }
    }

    [Theory]
    [MemberData(nameof(Corpus.Negatives), MemberType = typeof(Corpus))]
    public void NearMissesAgreeWithTheCharPath(string detector, string template, int seed)
    {
        var value = Corpus.Expand(template, seed + 1000);
        for (var offset = 0; offset <= 40; offset += 13)
        {
            AssertSame(detector, false, new string(' ', offset) + value);
        }
    }

    [Theory]
    [MemberData(nameof(Corpus.BenignFiles), MemberType = typeof(Corpus))]
    public void BenignFilesAgreeWithTheCharPath(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Corpus.Dir, "benign", file));
        Assert.Equal(Ids(_chars.ScanBody(bytes, null, "application/json", "h")), Ids(_bytes.ScanBody(bytes, null, "application/json", "h")));
    }

    [Fact]
    public void RandomBodiesWithInsertedSecretsAgreeWithTheCharPath()
    {
        var positives = Corpus.Entries.Where(e => e.Positive).ToArray();
        var random = new Random(42);
        const string filler = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-./:\"{},=\\%@+\n";
        for (var round = 0; round < 300; round++)
        {
            var builder = new StringBuilder();
            var length = random.Next(0, 400);
            for (var i = 0; i < length; i++)
            {
                builder.Append(filler[random.Next(filler.Length)]);
                if (random.Next(120) == 0)
                {
                    builder.Append(Corpus.Expand(positives[random.Next(positives.Length)].Template, random.Next()));
                }
            }

            var body = Encoding.UTF8.GetBytes(builder.ToString());
            Assert.Equal(Ids(_chars.ScanBody(body, null, "text/plain", "h")), Ids(_bytes.ScanBody(body, null, "text/plain", "h")));
        }
    }

    [Theory]
    [InlineData("aws_secret_access_key")]
    [InlineData("AWS_SECRET_ACCESS_KEY")]
    [InlineData("Aws_Secret_Access_Key")]
    [InlineData("aWs SeCrEt")]
    public void CaseInsensitiveKeywordsAreFoundInAnyCaseAtEveryOffset(string keyword)
    {
        var secret = Corpus.Expand("{A:40}", 5);
        for (var offset = 0; offset <= 40; offset++)
        {
            AssertSame("aws-secret-access-key", true, new string('x', offset) + " " + keyword + " = " + secret + "\n");
        }
    }

    [Fact]
    public void KnownSecretIsFoundRawAndBase64AtEveryOffset()
    {
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes("prefix " + SecretValue + " suffix"));
        for (var offset = 0; offset <= 40; offset++)
        {
            var pad = new string(' ', offset);
            AssertSame("vault-secret", true, pad + SecretValue);
            AssertSame("vault-secret", true, pad + "{\"v\":\"" + base64 + "\"}");
        }
    }

    [Fact]
    public void UrlPasswordAndEscapedTokensAgreeWithTheCharPath()
    {
        var token = Corpus.Expand("ghp_{A:36}", 3);
        for (var offset = 0; offset <= 40; offset++)
        {
            var pad = new string('-', offset);
            AssertSame("url-password", true, pad + "postgres://app:" + "pw" + offset + "@db.internal/x");
            AssertSame("url-password", false, pad + "mail me at someone@example.com");
            var escaped = JsonSerializer.Serialize(token, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.Default })
                .Replace("_", "\\u005f", StringComparison.Ordinal);
            AssertSame("github-token", true, pad + "{\"t\":" + escaped + "}");
        }
    }

    [Fact]
    public void PrefilterStageOneNeverMissesALiteralAndMatchesTheScalarPath()
    {
        var core = new ScannerCore(new ScannerOptions { KnownSecrets = _secrets });
        var filter = core.BytePrefilter!;
        var literals = Detectors().SelectMany(d => d.Anchors.Concat(d.Keywords)).Append(SecretValue).Distinct().ToArray();
        var random = new Random(7);
        Span<int> hits = stackalloc int[64];
        var rejected = 0;
        for (var round = 0; round < 400; round++)
        {
            var data = new byte[random.Next(0, 200)];
            random.NextBytes(data);
            var expected = new SortedSet<int>();
            if (data.Length >= 3)
            {
                var literal = Encoding.Latin1.GetBytes(literals[random.Next(literals.Length)]);
                if (round % 2 == 0)
                {
                    literal = Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(literal).ToUpperInvariant());
                }

                if (literal.Length <= data.Length)
                {
                    literal.CopyTo(data, random.Next(data.Length - literal.Length + 1));
                }
            }

            for (var i = 0; i + BytePrefilter.MinLiteral <= data.Length; i++)
            {
                if (filter.ScalarAccepts(data, i))
                {
                    expected.Add(i);
                }
            }

            var found = new SortedSet<int>();
            var from = 0;
            while (from < data.Length)
            {
                var count = filter.Collect(data, ref from, hits);
                for (var k = 0; k < count; k++)
                {
                    found.Add(hits[k]);
                }
            }

            Assert.Equal(expected, found);

            // Every literal that occurs in full (case-insensitively for keywords) has its window among the candidates.
            for (var i = 0; i < data.Length; i++)
            {
                // The quick reject only ever rejects windows that no table holds.
                if (!filter.MayMatch(data, i))
                {
                    rejected++;
                    for (var table = 0; table < BytePrefilter.Tables; table++)
                    {
                        Assert.Null(filter.Lookup(data, i, table));
                    }
                }

                for (var table = 0; table < BytePrefilter.Tables; table++)
                {
                    foreach (var entry in filter.Lookup(data, i, table) ?? [])
                    {
                        if (i >= entry.Offset && entry.MatchesAt(data, i - entry.Offset))
                        {
                            Assert.Contains(i, found);

                            // ... and the quick stage-2 reject lets it through.
                            Assert.True(filter.MayMatch(data, i), $"MayMatch rejected the window of '{Encoding.Latin1.GetString(entry.Bytes)}' at {i}");
                        }
                    }
                }
            }
        }

        // Random bytes are almost never a window: the reject must actually reject.
        Assert.True(rejected > 10_000, $"MayMatch rejected only {rejected} positions");
    }

    private static IEnumerable<Detectors.Detector> Detectors() => ProxyGuard.Inspection.Detectors.BuiltinCatalog.All;

    private static void AssertSame(string detector, bool expected, string text)
    {
        var body = Encoding.UTF8.GetBytes(text);
        var fast = _bytes.ScanBody(body, null, "text/plain", "h");
        var slow = _chars.ScanBody(body, null, "text/plain", "h");
        Assert.True(Ids(slow).SequenceEqual(Ids(fast)), $"byte path [{string.Join(",", Ids(fast))}] != char path [{string.Join(",", Ids(slow))}] for offset text of length {text.Length}");
        Assert.True(expected == Ids(fast).Contains(detector), $"{detector} expected={expected} got [{string.Join(",", Ids(fast))}] (length {text.Length})");
    }

    private static string[] Ids(ScanResult result) =>
        [.. result.Findings.Select(f => f.Detector).Distinct().Order(StringComparer.Ordinal), .. result.Error is null ? [] : new[] { "error:" + result.Error }];
}
