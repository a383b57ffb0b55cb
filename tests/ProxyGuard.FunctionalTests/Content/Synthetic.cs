using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace ProxyGuard.FunctionalTests.Content;

/// <summary>Synthetic credentials of the right shape (random, never real) and the encodings used to hide them.</summary>
internal static class Synthetic
{
    private const string Base62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    private const string UpperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    private const string LowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789";

    public static string Random(string alphabet, int length) => new(RandomNumberGenerator.GetItems<char>(alphabet, length));

    /// <summary>A GitHub classic token shape: ghp_ + 36 base62 characters.</summary>
    public static string GitHubToken() => "ghp_" + Random(Base62, 36);

    /// <summary>An AWS access key id shape: AKIA + 16 upper-case letters or digits.</summary>
    public static string AwsKeyId() => "AKIA" + Random(UpperAlnum, 16);

    /// <summary>A PEM private key block (random base64 body, not a key).</summary>
    public static string PemPrivateKey() =>
        "-----BEGIN RSA PRIVATE KEY-----\n" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)) + "\n-----END RSA PRIVATE KEY-----\n";

    /// <summary>Matches the fixture's redact rule <c>acme_[a-z0-9]{32}</c>.</summary>
    public static string AcmeRedactToken() => "acme_" + Random(LowerAlnum, 32);

    /// <summary>Matches the fixture's log rule <c>acmelog_[a-z0-9]{24}</c>.</summary>
    public static string AcmeLogToken() => "acmelog_" + Random(LowerAlnum, 24);

    /// <summary>Benign text of a similar shape that no detector should match.</summary>
    public static string Benign() => "just-some-harmless-words-" + Random(LowerAlnum, 8);

    /// <summary>Every character percent-encoded (so the plain text never appears).</summary>
    public static string PercentEncodeAll(string text)
    {
        var sb = new StringBuilder(text.Length * 3);
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    /// <summary>Every character as a JSON <c>\uXXXX</c> escape.</summary>
    public static string JsonEscapeAll(string text)
    {
        var sb = new StringBuilder(text.Length * 6);
        foreach (var c in text)
        {
            sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Gzip(byte[] data) => Compress(data, s => new GZipStream(s, CompressionLevel.Optimal, leaveOpen: true));

    /// <summary>HTTP <c>deflate</c> is the zlib format (RFC 9110 8.4.1.2).</summary>
    public static byte[] Deflate(byte[] data) => Compress(data, s => new ZLibStream(s, CompressionLevel.Optimal, leaveOpen: true));

    public static byte[] Brotli(byte[] data) => Compress(data, s => new BrotliStream(s, CompressionLevel.Optimal, leaveOpen: true));

    private static byte[] Compress(byte[] data, Func<Stream, Stream> create)
    {
        using var output = new MemoryStream();
        using (var z = create(output))
        {
            z.Write(data);
        }

        return output.ToArray();
    }

    /// <summary>A gzip member of <paramref name="size"/> zero bytes, compressed as far as gzip goes (about 1000:1).</summary>
    public static byte[] GzipZeros(long size)
    {
        using var output = new MemoryStream();
        using (var z = new GZipStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var zeros = new byte[1024 * 1024];
            for (long written = 0; written < size; written += zeros.Length)
            {
                z.Write(zeros, 0, (int)Math.Min(zeros.Length, size - written));
            }
        }

        return output.ToArray();
    }
}
