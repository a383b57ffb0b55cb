namespace ProxyGuard.Inspection.Detectors;

internal static class Validators
{
    /// <summary>A 40-character AWS secret is random base64: upper, lower and digits all appear; hex digests do not qualify.</summary>
    public static bool MixedCaseWithDigit(ReadOnlySpan<char> match)
    {
        bool upper = false, lower = false, digit = false;
        foreach (var c in match)
        {
            upper |= char.IsAsciiLetterUpper(c);
            lower |= char.IsAsciiLetterLower(c);
            digit |= char.IsAsciiDigit(c);
        }

        return upper && lower && digit;
    }

    /// <summary>The first part of a JWT (up to its dot) decodes to a JSON object with an "alg" member.</summary>
    public static bool JwtHeaderPart(ReadOnlySpan<char> part)
    {
        Span<byte> header = stackalloc byte[768];
        if (!Decoding.Base64.TryDecodeSmall(part, header, out var written))
        {
            return false;
        }

        var json = header[..written];
        return json.Length > 2 && json[0] == (byte)'{' && json.IndexOf("\"alg\""u8) >= 0;
    }

    /// <summary>Legacy Vault tokens <c>s.</c> + 24 characters must contain a digit (rules out identifiers such as <c>s.getElementsByTagName</c>).</summary>
    public static bool VaultToken(ReadOnlySpan<char> match)
    {
        if (match.StartsWith("hv", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return match.IndexOfAnyInRange('0', '9') >= 0;
    }
}
