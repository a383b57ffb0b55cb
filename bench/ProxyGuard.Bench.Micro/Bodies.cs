using System.IO.Compression;
using System.Text;
using ProxyGuard.Inspection;

namespace ProxyGuard.Bench.Micro;

/// <summary>Deterministic benchmark inputs (about 1 MiB each).</summary>
internal static class Bodies
{
    public const int Size = 1024 * 1024;

    private static readonly string[] _words =
    [
        "alpha", "beta", "gamma", "delta", "proxy", "guard", "sandbox", "agent", "token", "policy", "network",
        "service", "request", "response", "value", "cache", "index", "render", "update", "create",
    ];

    /// <summary>The scanner every benchmark measures: every built-in detector plus one known vault secret.</summary>
    public static ContentScanner Scanner() => new(new ScannerOptions
    {
        KnownSecrets = [new KnownSecret("bench", "bench-known-secret-value-0123456789")],
    });

    /// <summary>A GitHub-API-like JSON array: URLs, ids, SHAs, timestamps, prose with a few escapes, emails.</summary>
    public static byte[] BenignJson()
    {
        var random = new Random(1);
        var builder = new StringBuilder(Size + 4096);
        builder.Append('[');
        while (builder.Length < Size - 2048)
        {
            var login = Word(random) + random.Next(1, 999);
            var repo = Word(random) + "-" + Word(random);
            builder.Append("{\"id\":").Append(random.Next()).Append(",\"node_id\":\"MDEwOlJlcG9zaXRvcnk").Append(random.Next(100000, 999999)).Append('"')
                .Append(",\"name\":\"").Append(repo).Append("\",\"full_name\":\"").Append(login).Append('/').Append(repo).Append('"')
                .Append(",\"owner\":{\"login\":\"").Append(login).Append("\",\"id\":").Append(random.Next())
                .Append(",\"avatar_url\":\"https://avatars.githubusercontent.com/u/").Append(random.Next()).Append("?v=4\"")
                .Append(",\"url\":\"https://api.github.com/users/").Append(login).Append("\",\"type\":\"User\",\"site_admin\":false}")
                .Append(",\"description\":\"A ").Append(Word(random)).Append(" for ").Append(Word(random)).Append(" and ").Append(Word(random))
                .Append(" with \\\"quotes\\\" and a newline\\nthen more text about ").Append(Word(random)).Append('"')
                .Append(",\"html_url\":\"https://github.com/").Append(login).Append('/').Append(repo).Append('"')
                .Append(",\"clone_url\":\"https://github.com/").Append(login).Append('/').Append(repo).Append(".git\"")
                .Append(",\"pulls_url\":\"https://api.github.com/repos/").Append(login).Append('/').Append(repo).Append("/pulls{/number}\"")
                .Append(",\"created_at\":\"2024-0").Append(random.Next(1, 9)).Append("-1").Append(random.Next(0, 9)).Append("T12:34:56Z\"")
                .Append(",\"head_sha\":\"").Append(Hex(random, 40)).Append('"')
                .Append(",\"request_id\":\"").Append(new Guid(Bytes(random, 16))).Append('"')
                .Append(",\"author\":\"").Append(login).Append("@users.noreply.github.com\"")
                .Append(",\"stargazers_count\":").Append(random.Next(0, 5000))
                .Append(",\"topics\":[\"").Append(Word(random)).Append("\",\"").Append(Word(random)).Append("\"],\"language\":\"C#\",\"license\":{\"key\":\"mit\",\"spdx_id\":\"MIT\"}},");
        }

        builder.Length--;
        builder.Append(']');
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    /// <summary>The benign body with a credential of a different kind every ~8 KiB (about 128 secrets).</summary>
    public static byte[] WithSecrets()
    {
        var random = new Random(2);
        var text = Encoding.UTF8.GetString(BenignJson());
        string[] templates =
        [
            "ghp_" + Alnum(random, 36), "AKIA" + Upper(random, 16), "xoxb-1234567890-1234567890123-" + Alnum(random, 24),
            "sk_live_" + Alnum(random, 24), "AIza" + Alnum(random, 35), "glpat-" + Alnum(random, 20), "npm_" + Alnum(random, 36),
            "-----BEGIN RSA PRIVATE KEY-----", "https://deploy:" + Alnum(random, 16) + "@db.internal/app",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + Alnum(random, 43),
        ];
        var builder = new StringBuilder(text.Length + 16384);
        var position = 0;
        var k = 0;
        while (position < text.Length)
        {
            var next = text.IndexOf("\"description\":\"", Math.Min(text.Length, position + 8192), StringComparison.Ordinal);
            if (next < 0)
            {
                builder.Append(text, position, text.Length - position);
                break;
            }

            next += "\"description\":\"".Length;
            builder.Append(text, position, next - position).Append("token ").Append(templates[k++ % templates.Length]).Append(' ');
            position = next;
        }

        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    private static string Word(Random random) => _words[random.Next(_words.Length)];

    private static byte[] Bytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    private static string Hex(Random random, int length) => Convert.ToHexString(Bytes(random, length / 2)).ToLowerInvariant();

    private static string Alnum(Random random, int length) => Pick(random, length, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");

    private static string Upper(Random random, int length) => Pick(random, length, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");

    private static string Pick(Random random, int length, string alphabet)
    {
        var chars = new char[length];
        for (var i = 0; i < length; i++)
        {
            chars[i] = alphabet[random.Next(alphabet.Length)];
        }

        return new string(chars);
    }
}
