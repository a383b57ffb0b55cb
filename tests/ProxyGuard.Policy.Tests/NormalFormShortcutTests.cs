using CsCheck;

namespace ProxyGuard.Policy.Tests;

/// <summary>
/// The host and path normalisers return input already in normal form as it is, without the full pass (the common case
/// on every request). The shortcut must never change a result: compared with the full pass over generated inputs that
/// sit on the shortcut's edges (case, dots, empty and dot segments, punycode, numeric last labels, escapes).
/// </summary>
public sealed class NormalFormShortcutTests
{
    [Fact]
    public void The_host_shortcut_agrees_with_the_full_normaliser()
    {
        var label = Gen.OneOf(
            Gen.Char["abcxyz019-_"].Array[1, 8].Select(a => new string(a)),
            Gen.OneOfConst("xn--bcher-kva", "xn--zz", "0x1f", "0X1F", "08", "255", "a" + new string('b', 62), new string('c', 64), "A", "é", "", " ", "%41", "[", ":"));
        var host = Gen.Select(label.Array[1, 5], Gen.Bool, (labels, dot) => string.Join('.', labels) + (dot ? "." : string.Empty));
        Gen.OneOf(host, Gen.String).Sample(h =>
        {
            var shortcut = HostNormalizer.TryNormalize(h, out var a, out var errorA);
            var full = HostNormalizer.TryNormalizeFull(h, out var b, out var errorB);
            Assert.Equal(full, shortcut);
            Assert.Equal(b, a);
            Assert.Equal(errorB, errorA);
        }, iter: 20_000);
    }

    [Fact]
    public void The_path_shortcut_agrees_with_the_full_normaliser()
    {
        var segment = Gen.OneOf(
            Gen.Char["abcAZ09-._~!$&'()*+,;=:@"].Array[0, 6].Select(a => new string(a)),
            Gen.OneOfConst(".", "..", "%2e", "%2E", "%2f", "%41", "%25", "%", "\\", "é", " ", "\u0001", "a b", "~", "..;", ".;x", ";", ";x", "..%3B", "a;b"));
        var path = Gen.Select(segment.Array[0, 6], Gen.Bool, (segments, rooted) => (rooted ? "/" : string.Empty) + string.Join('/', segments));
        Gen.OneOf(path, Gen.String).Sample(p =>
        {
            var end = p.IndexOfAny(['?', '#']);
            var full = PathNormalizer.NormalizeFull(end < 0 ? p : p[..end]);
            Assert.Equal(full, PathNormalizer.Normalize(p));
        }, iter: 20_000);
    }
}
