namespace ProxyGuard.Policy;

/// <summary>
/// The embedded Public Suffix List (ICANN and PRIVATE sections, punycode). Every single-label name is a public
/// suffix (the list's implicit <c>*</c> rule); wildcard (<c>*.ck</c>) and exception (<c>!www.ck</c>) rules apply.
/// </summary>
internal static class PublicSuffixList
{
    private static readonly Lazy<Data> s_data = new(Load);

    public static int Count => s_data.Value.Rules.Count + s_data.Value.Wildcards.Count;

    /// <summary>True when <paramref name="normalizedName"/> is itself a public suffix.</summary>
    public static bool IsPublicSuffix(string normalizedName)
    {
        if (!normalizedName.Contains('.', StringComparison.Ordinal))
        {
            return true;
        }

        var data = s_data.Value;
        if (data.Exceptions.Contains(normalizedName))
        {
            return false;
        }

        if (data.Rules.Contains(normalizedName))
        {
            return true;
        }

        var dot = normalizedName.IndexOf('.', StringComparison.Ordinal);
        return data.Wildcards.Contains(normalizedName[(dot + 1)..]);
    }

    /// <summary>
    /// For a wildcard <c>*.suffix</c> (which matches any depth below <paramref name="normalizedSuffix"/>): returns a
    /// public suffix the wildcard would span, or <c>null</c>. That is the suffix itself when it is public, or a
    /// public suffix somewhere below it (e.g. <c>*.amazonaws.com</c> spans <c>s3.amazonaws.com</c>).
    /// </summary>
    public static string? SpannedSuffix(string normalizedSuffix)
    {
        if (IsPublicSuffix(normalizedSuffix))
        {
            return normalizedSuffix;
        }

        var data = s_data.Value;
        if (data.Wildcards.Contains(normalizedSuffix))
        {
            return "*." + normalizedSuffix;
        }

        return data.SuffixBelow.GetValueOrDefault(normalizedSuffix);
    }

    private static Data Load()
    {
        var data = new Data();
        using var stream = typeof(PublicSuffixList).Assembly.GetManifestResourceStream("ProxyGuard.Policy.public_suffix_list.txt")
            ?? throw new InvalidOperationException("embedded public suffix list is missing");
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            if (line[0] == '!')
            {
                data.Exceptions.Add(line[1..]);
                continue;
            }

            if (line.StartsWith("*.", StringComparison.Ordinal))
            {
                data.Wildcards.Add(line[2..]);
            }
            else
            {
                data.Rules.Add(line);
            }

            // Record every proper ancestor (with at least two labels) as having a public suffix below it.
            var name = line.StartsWith("*.", StringComparison.Ordinal) ? line[2..] : line;
            var dot = name.IndexOf('.', StringComparison.Ordinal);
            while (dot >= 0)
            {
                var ancestor = name[(dot + 1)..];
                if (!ancestor.Contains('.', StringComparison.Ordinal))
                {
                    break;
                }

                data.SuffixBelow.TryAdd(ancestor, line);
                dot = name.IndexOf('.', dot + 1);
            }
        }

        return data;
    }

    private sealed class Data
    {
        public HashSet<string> Rules { get; } = new(StringComparer.Ordinal);

        public HashSet<string> Wildcards { get; } = new(StringComparer.Ordinal);

        public HashSet<string> Exceptions { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string> SuffixBelow { get; } = new(StringComparer.Ordinal);
    }
}
