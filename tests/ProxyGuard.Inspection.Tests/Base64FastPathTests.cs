using System.Text;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Tests;

/// <summary>
/// The byte decoder's whole-quad fast path and the vectorised text heuristic must give exactly what the plain
/// character-by-character versions give, for any input (line breaks, padding, foreign bytes, short destinations).
/// </summary>
public sealed class Base64FastPathTests
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";

    [Fact]
    public void Byte_decoding_matches_character_decoding_for_random_inputs()
    {
        var random = new Random(7);
        for (var round = 0; round < 5000; round++)
        {
            var length = random.Next(0, 140);
            var source = new byte[length];
            for (var i = 0; i < length; i++)
            {
                source[i] = random.Next(40) switch
                {
                    0 => (byte)'\n',
                    1 => (byte)'\r',
                    2 => (byte)'=',
                    3 => (byte)random.Next(256),
                    _ => (byte)Alphabet[random.Next(Alphabet.Length)],
                };
            }

            var capacity = random.Next(3) == 0 ? random.Next(0, 20) : Base64.MaxDecodedLength(length);
            var fromBytes = new byte[capacity];
            var fromChars = new byte[capacity];
            var written = Base64.Decode(source, fromBytes);
            var expected = Base64.Decode(Encoding.Latin1.GetString(source).AsSpan(), fromChars);
            Assert.Equal(expected, written);
            Assert.True(fromChars.AsSpan(0, expected).SequenceEqual(fromBytes.AsSpan(0, written)), $"round {round}");
        }
    }

    [Fact]
    public void Byte_decoding_of_standard_base64_round_trips()
    {
        var random = new Random(3);
        for (var length = 0; length < 200; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            var encoded = Encoding.ASCII.GetBytes(Convert.ToBase64String(data));
            var decoded = new byte[Base64.MaxDecodedLength(encoded.Length)];
            var written = Base64.Decode(encoded, decoded);
            Assert.Equal(data, decoded.AsSpan(0, written).ToArray());
        }
    }

    [Fact]
    public void Text_heuristic_matches_a_plain_count_at_every_length()
    {
        var random = new Random(11);
        var samples = new List<byte[]>();
        for (var round = 0; round < 3000; round++)
        {
            var bytes = new byte[random.Next(0, 100)];
            var mode = round % 4;
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] = mode switch
                {
                    0 => (byte)random.Next(256),
                    1 => (byte)random.Next(0x20, 0x7F),
                    2 => random.Next(12) == 0 ? (byte)random.Next(0x20) : (byte)random.Next(0x20, 0x80),
                    _ => random.Next(6) == 0 ? (byte)0x7F : (byte)"ab1 \t\n\r.-"[random.Next(9)],
                };
            }

            samples.Add(bytes);
        }

        samples.Add("caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e and more text"u8.ToArray());
        var decisions = new HashSet<bool>();
        foreach (var bytes in samples)
        {
            var expected = Reference(bytes);
            decisions.Add(expected);
            Assert.Equal(expected, Base64.LooksLikeText(bytes));
        }

        Assert.Equal(2, decisions.Count);
    }

    private static bool Reference(byte[] bytes)
    {
        if (bytes.Length < 4)
        {
            return false;
        }

        var controls = bytes.Count(b => (b < 0x20 && b is not (9 or 10 or 13)) || b == 0x7F);
        var alnum = bytes.Count(b => b < 128 && char.IsAsciiLetterOrDigit((char)b));
        if (controls * 16 > bytes.Length || alnum * 4 < bytes.Length)
        {
            return false;
        }

        var trimmed = bytes.AsSpan();
        for (var k = 0; k < 3 && trimmed.Length > 0 && trimmed[^1] >= 0x80; k++)
        {
            trimmed = trimmed[..^1];
        }

        return System.Text.Unicode.Utf8.IsValid(trimmed);
    }
}
