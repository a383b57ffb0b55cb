namespace ProxyGuard.Inspection.Decoding;

/// <summary>Minimal Content-Type parsing: the media type and one parameter.</summary>
internal static class MediaType
{
    public static ReadOnlySpan<char> Essence(string? contentType)
    {
        if (contentType is null)
        {
            return default;
        }

        var span = contentType.AsSpan();
        var semi = span.IndexOf(';');
        return (semi >= 0 ? span[..semi] : span).Trim();
    }

    public static bool IsForm(string? contentType) =>
        Essence(contentType).Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase);

    public static bool IsMultipart(string? contentType) =>
        Essence(contentType).StartsWith("multipart/", StringComparison.OrdinalIgnoreCase);

    public static string? Parameter(string? contentType, string name)
    {
        if (contentType is null)
        {
            return null;
        }

        foreach (var range in contentType.AsSpan().Split(';'))
        {
            var part = contentType.AsSpan(range).Trim();
            var eq = part.IndexOf('=');
            if (eq <= 0 || !part[..eq].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var value = part[(eq + 1)..].Trim();
            if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
            {
                value = value[1..^1];
            }

            return value.IsEmpty ? null : value.ToString();
        }

        return null;
    }
}
