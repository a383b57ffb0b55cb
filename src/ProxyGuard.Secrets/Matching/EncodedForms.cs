using System.Text;

namespace ProxyGuard.Secrets.Matching;

/// <summary>
/// The byte patterns under which a real value can travel: raw UTF-8, percent-encoded (upper and lower
/// hex, and form encoding with '+'), standalone base64/base64url (padded and not), and the stable cores
/// of the value's base64/base64url encoding at each of the three byte alignments it can have inside a
/// larger base64 string (e.g. <c>Basic base64(user:VALUE)</c>).
/// </summary>
internal static class EncodedForms
{
    /// <summary>Encoded forms (and base64 cores) shorter than this are not matched: too many false hits.</summary>
    public const int MinimumEncodedLength = 8;

    public static List<byte[]> Build(string value)
    {
        var forms = new List<byte[]>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string form)
        {
            if (form.Length > 0 && seen.Add(form))
            {
                forms.Add(Encoding.UTF8.GetBytes(form));
            }
        }

        Add(value);
        var bytes = Encoding.UTF8.GetBytes(value);
        try
        {
            var escaped = Uri.EscapeDataString(value);
            if (escaped.Length >= MinimumEncodedLength && escaped != value)
            {
                Add(escaped);
                Add(LowerHex(escaped));
                if (escaped.Contains("%20", StringComparison.Ordinal))
                {
                    Add(escaped.Replace("%20", "+", StringComparison.Ordinal));
                    Add(LowerHex(escaped).Replace("%20", "+", StringComparison.Ordinal));
                }
            }

            var standard = Convert.ToBase64String(bytes);
            if (standard.Length >= MinimumEncodedLength)
            {
                Add(standard);
                Add(standard.TrimEnd('='));
                Add(ToUrl(standard));
                Add(ToUrl(standard).TrimEnd('='));
            }

            for (var alignment = 0; alignment < 3; alignment++)
            {
                var core = StableCore(bytes, alignment);
                if (core.Length >= MinimumEncodedLength)
                {
                    Add(core);
                    Add(ToUrl(core));
                }
            }
        }
        finally
        {
            Array.Clear(bytes);
        }

        return forms;
    }

    /// <summary>
    /// The base64 characters that depend only on the value's bits when the value starts
    /// <paramref name="alignment"/> bytes into a 3-byte group. Character j covers bits [6j, 6j+6) of
    /// the stream; it is stable when those bits lie within the value's bits [8a, 8(a+n)).
    /// </summary>
    internal static string StableCore(ReadOnlySpan<byte> value, int alignment)
    {
        var buffer = new byte[alignment + value.Length + 3];
        value.CopyTo(buffer.AsSpan(alignment));
        var encoded = Convert.ToBase64String(buffer);
        Array.Clear(buffer);
        var first = ((8 * alignment) + 5) / 6;
        var endExclusive = 8 * (alignment + value.Length) / 6;
        return endExclusive > first ? encoded[first..endExclusive] : string.Empty;
    }

    private static string ToUrl(string base64) => base64.Replace('+', '-').Replace('/', '_');

    private static string LowerHex(string escaped)
    {
        var chars = escaped.ToCharArray();
        for (var i = 0; i + 2 < chars.Length; i++)
        {
            if (chars[i] == '%')
            {
                chars[i + 1] = char.ToLowerInvariant(chars[i + 1]);
                chars[i + 2] = char.ToLowerInvariant(chars[i + 2]);
                i += 2;
            }
        }

        return new string(chars);
    }
}
