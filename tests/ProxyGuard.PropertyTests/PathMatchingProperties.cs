using System.Text;
using CsCheck;
using ProxyGuard.Policy;

namespace ProxyGuard.PropertyTests;

/// <summary>Path normalisation and path rules (SPEC 4.2): normal forms are fixed points, equivalent spellings decide alike, ambiguous paths never match an allow path rule, nothing throws.</summary>
public sealed class PathMatchingProperties
{
    private const string Host = "api.example.com";

    private static readonly Lazy<CompiledPolicy> s_policy = new(() => HostNormalizationProperties.Load("""
        version: 1
        default: deny
        rules:
          - name: deny-admin
            hosts: [api.example.com]
            paths: ["/repos/*/admin/**"]
            action: deny
          - name: repos
            hosts: [api.example.com]
            paths: ["/repos/acme/**", "/user", "/a/*/c"]
            action: allow
          - name: other-host
            hosts: [other.example.com]
            action: allow
        """));

    /// <summary>Paths built from the characters that matter to normalisation.</summary>
    private static readonly Gen<string> s_rawPaths = Gen.OneOf(
        Gen.Char["/aAcemo.%2eEfF5cC0\\?#~-_ !:@;"].Array[0, 30].Select(a => new string(a)),
        Gen.OneOfConst("/repos/", "/repos/acme/", "/user", "/a/", "/c", "..", ".", "%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%00", "%41", "//", "/admin/", "?x=1", "\u00e9")
            .Array[1, 8].Select(parts => string.Concat(parts)),
        Gen.String);

    [Fact]
    public void Normalising_never_throws_and_an_unambiguous_normal_form_is_a_fixed_point()
    {
        s_rawPaths.Sample(raw =>
        {
            var n = PathNormalizer.Normalize(raw);
            Assert.StartsWith("/", n.Path, StringComparison.Ordinal);
            if (!n.Ambiguous)
            {
                var again = PathNormalizer.Normalize(n.Path);
                Assert.False(again.Ambiguous, $"'{raw}' -> '{n.Path}' became ambiguous");
                Assert.Equal(n.Path, again.Path);
            }
        }, iter: 20_000);
    }

    [Fact]
    public void A_raw_path_decides_like_its_normal_form_and_an_ambiguous_one_is_never_allowed_by_a_path_rule()
    {
        var policy = s_policy.Value;
        s_rawPaths.Sample(raw =>
        {
            var n = PathNormalizer.Normalize(raw);
            var decision = policy.DecideRequest(null, "https", Host, 443, "GET", raw);
            if (n.Ambiguous)
            {
                Assert.False(decision.Allowed, $"ambiguous '{raw}' allowed by {decision.Rule}");
            }
            else
            {
                var normal = policy.DecideRequest(null, "https", Host, 443, "GET", n.Path);
                Assert.Equal((normal.Allowed, normal.Rule), (decision.Allowed, decision.Rule));
            }

            // A rule without paths does not care about the path at all.
            Assert.True(policy.DecideRequest(null, "https", "other.example.com", 443, "GET", raw).Allowed);
        }, iter: 20_000);
    }

    [Fact]
    public void Percent_encoding_unreserved_characters_and_dot_segments_do_not_change_the_decision()
    {
        var policy = s_policy.Value;
        var segment = Gen.Char["abcdefxyzACME0123456789-_~"].Array[1, 8].Select(a => new string(a));
        var segments = Gen.OneOf(
            Gen.Select(segment.Array[0, 4], s => new[] { "repos", "acme" }.Concat(s).ToArray()),
            Gen.Select(segment, s => new[] { "a", s, "c" }),
            Gen.Select(segment.Array[1, 5], s => s));
        Gen.Select(segments, Gen.Bool.Array[64], Gen.Int[0, 3], (s, enc, dots) => (s, enc, dots)).Sample((parts, encode, dots) =>
        {
            var plain = "/" + string.Join('/', parts);
            var spelled = new StringBuilder();
            var k = 0;
            foreach (var part in parts)
            {
                spelled.Append('/');
                if (dots == 1)
                {
                    spelled.Append("./");
                }
                else if (dots == 2)
                {
                    spelled.Append("zz/../");
                }

                foreach (var c in part)
                {
                    spelled.Append(encode[k++ % encode.Length] ? $"%{(int)c:X2}" : c.ToString());
                }
            }

            var expected = policy.DecideRequest(null, "https", Host, 443, "GET", plain);
            var actual = policy.DecideRequest(null, "https", Host, 443, "get", spelled.ToString());
            Assert.Equal(plain, PathNormalizer.Normalize(spelled.ToString()).Path);
            Assert.Equal((expected.Allowed, expected.Rule), (actual.Allowed, actual.Rule));
        }, iter: 10_000);
    }

    [Fact]
    public void Encoded_slashes_backslashes_and_encoded_dots_never_reach_an_allowed_path()
    {
        var policy = s_policy.Value;
        var trick = Gen.OneOfConst("%2F", "%2f", "%5C", "\\", "%2E%2E/", "%2e/", "%252F", "%00", "/");
        Gen.Select(trick, Gen.Int[0, 3], (t, at) => (t, at)).Sample((t, at) =>
        {
            string[] parts = ["repos", "acme", "x", "y"];
            var raw = "/" + string.Join('/', parts.Take(at)) + (at > 0 ? "/" : string.Empty) + t + string.Join('/', parts.Skip(at));
            var decision = policy.DecideRequest(null, "https", Host, 443, "GET", raw);
            Assert.False(decision.Allowed, $"{raw} allowed by {decision.Rule}");
        }, iter: 2000);
    }
}
