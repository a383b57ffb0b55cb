using System.Security.Cryptography;
using System.Text;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>Synthetic secret values and the encoded forms a leak could take.</summary>
internal static class SecretForms
{
    /// <summary>A fresh synthetic value; <paramref name="withSlash"/> makes its URL-encoded form differ from the raw one.</summary>
    public static string NewValue(string kind, bool withSlash = false)
    {
        var a = Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();
        var b = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        return withSlash ? $"pgsynthetic-{kind}-{a}/{b}" : $"pgsynthetic-{kind}-{a}{b}";
    }

    /// <summary>
    /// Raw, percent-encoded (upper and lower hex) and base64 / base64url forms of <paramref name="value"/>,
    /// the latter as the stable core at each of the 3 byte alignments, so the value is found inside a
    /// larger base64 string too (e.g. Basic credentials).
    /// </summary>
    public static IReadOnlyList<(string Form, string Text)> Forms(string value)
    {
        var forms = new List<(string, string)> { ("raw", value) };
        var escaped = Uri.EscapeDataString(value);
        if (escaped != value)
        {
            forms.Add(("url", escaped));
            forms.Add(("url-lower", LowerHex(escaped)));
        }

        var json = System.Text.Json.JsonSerializer.Serialize(value)[1..^1];
        if (json != value)
        {
            forms.Add(("json", json));
        }

        if (value.Contains('/', StringComparison.Ordinal))
        {
            forms.Add(("json-solidus", value.Replace("/", "\\/", StringComparison.Ordinal)));
        }

        var bytes = Encoding.UTF8.GetBytes(value);
        for (var a = 0; a < 3; a++)
        {
            var padded = new byte[a + bytes.Length + 2];
            bytes.CopyTo(padded, a);
            var b64 = Convert.ToBase64String(padded);
            var first = (8 * a + 5) / 6;
            var last = 8 * (a + bytes.Length) / 6;
            var core = b64[first..last];
            forms.Add(($"base64@{a}", core));
            forms.Add(($"base64url@{a}", core.Replace('+', '-').Replace('/', '_')));
        }

        forms.Add(("base64", Convert.ToBase64String(bytes)));
        return forms;
    }

    /// <summary>Names of the forms of any of <paramref name="values"/> that occur in <paramref name="text"/>.</summary>
    public static List<string> FoundIn(string text, IEnumerable<(string Name, string Value)> values)
    {
        var found = new List<string>();
        foreach (var (name, value) in values)
        {
            foreach (var (form, encoded) in Forms(value))
            {
                if (text.Contains(encoded, StringComparison.Ordinal))
                {
                    found.Add($"{name}:{form}");
                }
            }
        }

        return found;
    }

    private static string LowerHex(string escaped)
    {
        var sb = new StringBuilder(escaped.Length);
        for (var i = 0; i < escaped.Length; i++)
        {
            if (escaped[i] == '%' && i + 2 < escaped.Length)
            {
                sb.Append('%').Append(char.ToLowerInvariant(escaped[i + 1])).Append(char.ToLowerInvariant(escaped[i + 2]));
                i += 2;
            }
            else
            {
                sb.Append(escaped[i]);
            }
        }

        return sb.ToString();
    }
}
