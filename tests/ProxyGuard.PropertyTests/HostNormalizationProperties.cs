using System.Globalization;
using System.Net;
using CsCheck;
using ProxyGuard.Policy;

namespace ProxyGuard.PropertyTests;

/// <summary>Host and IP normalisation (SPEC 4.2): every spelling of a destination compares equal, normal forms are fixed points, nothing throws.</summary>
public sealed class HostNormalizationProperties
{
    private const long Iterations = 5000;

    /// <summary>An IPv4 address and one inet_aton spelling of it (decimal/octal/hex parts, 1 to 4 parts, any case, trailing dot).</summary>
    internal static readonly Gen<(uint Address, string Spelling)> IPv4Spellings =
        Gen.Select(Gen.UInt, Gen.Int[1, 4], Gen.Int[0, 2].Array[4], Gen.Bool, Gen.Bool, (address, parts, radices, upper, dot) =>
        {
            var bytes = new[] { (byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address };
            var values = new List<ulong>();
            for (var i = 0; i < parts - 1; i++)
            {
                values.Add(bytes[i]);
            }

            ulong last = 0;
            for (var i = parts - 1; i < 4; i++)
            {
                last = (last << 8) | bytes[i];
            }

            values.Add(last);
            var text = string.Join('.', values.Select((v, i) => Spell(v, radices[i])));
            return (address, (upper ? text.ToUpperInvariant() : text) + (dot ? "." : string.Empty));
        });

    [Fact]
    public void Every_inet_aton_spelling_of_an_IPv4_address_normalises_to_its_dotted_quad()
    {
        IPv4Spellings.Sample((address, spelling) =>
        {
            var expected = Dotted(address);
            Assert.True(HostNormalizer.TryNormalize(spelling, out var normalized, out var error), $"{spelling}: {error}");
            Assert.Equal(expected, normalized);
        }, iter: Iterations);
    }

    [Fact]
    public void IPv6_spellings_normalise_alike_and_IPv4_mapped_becomes_IPv4()
    {
        Gen.Select(Gen.Byte.Array[16], Gen.Bool, Gen.Bool, (bytes, upper, bracket) => (bytes, upper, bracket)).Sample((bytes, upper, bracket) =>
        {
            var address = new IPAddress(bytes);
            var canonical = address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : address.ToString();
            var full = string.Join(':', Enumerable.Range(0, 8).Select(i => ((bytes[2 * i] << 8) | bytes[(2 * i) + 1]).ToString("x4", CultureInfo.InvariantCulture)));
            foreach (var form in new[] { address.ToString(), full })
            {
                var spelled = upper ? form.ToUpperInvariant() : form;
                spelled = bracket ? $"[{spelled}]" : spelled;
                Assert.True(HostNormalizer.TryNormalize(spelled, out var normalized, out var error), $"{spelled}: {error}");
                Assert.Equal(canonical, normalized);
            }
        }, iter: Iterations);

        Gen.UInt.Sample(v4 =>
        {
            var dotted = Dotted(v4);
            Assert.Equal(dotted, HostNormalizer.NormalizeOrNull("::ffff:" + dotted));
            Assert.Equal(dotted, HostNormalizer.NormalizeOrNull("[::FFFF:" + dotted + "]"));
        }, iter: Iterations);
    }

    [Fact]
    public void Host_names_in_any_case_and_with_a_trailing_dot_normalise_to_lower_case_without_it()
    {
        var label = Gen.Char["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"].Array[1, 20]
            // Starts with "h": a label starting with "xn--" is an A-label, which must be valid punycode (and is
            // rejected otherwise); CI once drew "x" + "n--4Skj…".
            .Select(a => "h" + new string(a) + "y");
        Gen.Select(label.Array[1, 5], Gen.Bool, (labels, dot) => (labels, dot)).Sample((labels, dot) =>
        {
            var name = string.Join('.', labels) + ".example";
            var spelled = name + (dot ? "." : string.Empty);
            Assert.True(HostNormalizer.TryNormalize(spelled, out var normalized, out var error), $"{spelled}: {error}");
            Assert.Equal(name.ToLowerInvariant(), normalized);
        }, iter: Iterations);
    }

    [Fact]
    public void Arbitrary_strings_never_throw_and_a_normal_form_is_a_fixed_point()
    {
        var hostish = Gen.Char["abcxyzABCXYZ0123456789.:[]%-_x\u00fc\u00e9\u4e2d \t\0/\\@"].Array[0, 40].Select(a => new string(a));
        Gen.OneOf(hostish, Gen.String).Sample(host =>
        {
            if (HostNormalizer.TryNormalize(host, out var normalized, out _))
            {
                Assert.True(HostNormalizer.TryNormalize(normalized, out var again, out var error), $"'{normalized}' (from '{host}'): {error}");
                Assert.Equal(normalized, again);
                _ = HostNormalizer.TryGetAddress(normalized, out _);
            }
        }, iter: 20_000);
    }

    [Fact]
    public void Equivalent_IPv4_spellings_decide_alike_against_address_and_CIDR_rules()
    {
        var policy = Load("""
            version: 1
            default: deny
            network:
              allow_destinations: [0.0.0.0/0]
            rules:
              - name: one-address
                hosts: [203.0.113.7]
                action: allow
              - name: a-range
                hosts: [198.51.100.0/24]
                action: allow
              - name: denied-range
                hosts: [192.0.2.0/24]
                action: deny
            """);
        var interesting = Gen.OneOf(
            Gen.Const(0xCB007107u),
            Gen.UInt[0xC6336400u, 0xC63364FFu],
            Gen.UInt[0xC0000200u, 0xC00002FFu],
            Gen.UInt);
        Gen.Select(interesting, Gen.Int[1, 4], Gen.Int[0, 2].Array[4], Gen.Bool, (a, p, r, d) => (a, p, r, d)).Sample((address, parts, radices, dot) =>
        {
            var spelling = Spelling(address, parts, radices) + (dot ? "." : string.Empty);
            var expected = policy.DecideConnect(null, Dotted(address), 443);
            var actual = policy.DecideConnect(null, spelling, 443);
            Assert.Equal((expected.Allowed, expected.Rule), (actual.Allowed, actual.Rule));
            var request = policy.DecideRequest(null, "https", spelling, 443, "GET", "/");
            Assert.Equal((expected.Allowed, expected.Rule), (request.Allowed, request.Rule));
        }, iter: Iterations);
    }

    internal static CompiledPolicy Load(string yaml)
    {
        var result = PolicyLoader.LoadText(yaml, "property.yaml");
        Assert.True(result.Policy is not null, string.Join('\n', result.Diagnostics));
        return result.Policy!;
    }

    internal static string Dotted(uint address) =>
        new IPAddress([(byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address]).ToString();

    private static string Spelling(uint address, int parts, int[] radices)
    {
        var bytes = new[] { (byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address };
        var values = new List<ulong>();
        for (var i = 0; i < parts - 1; i++)
        {
            values.Add(bytes[i]);
        }

        ulong last = 0;
        for (var i = parts - 1; i < 4; i++)
        {
            last = (last << 8) | bytes[i];
        }

        values.Add(last);
        return string.Join('.', values.Select((v, i) => Spell(v, radices[i])));
    }

    private static string Spell(ulong value, int radix) => radix switch
    {
        0 => value.ToString(CultureInfo.InvariantCulture),
        1 => "0" + Convert.ToString((long)value, 8),
        _ => "0x" + value.ToString("x", CultureInfo.InvariantCulture),
    };
}
