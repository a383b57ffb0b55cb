namespace ProxyGuard.Policy;

/// <summary>
/// The embedded Public Suffix List (ICANN and PRIVATE sections, punycode). Every single-label name is a public
/// suffix (the list's implicit <c>*</c> rule); wildcard (<c>*.ck</c>) and exception (<c>!www.ck</c>) rules apply.
/// </summary>
internal static class PublicSuffixList
{
    private static readonly Lazy<(HashSet<string> Rules, HashSet<string> Wildcards, HashSet<string> Exceptions)> s_list = new(Load);

    public static bool IsPublicSuffix(string normalizedName)
    {
        if (!normalizedName.Contains('.', StringComparison.Ordinal))
        {
            return true;
        }

        var (rules, wildcards, exceptions) = s_list.Value;
        if (exceptions.Contains(normalizedName))
        {
            return false;
        }

        if (rules.Contains(normalizedName))
        {
            return true;
        }

        var dot = normalizedName.IndexOf('.', StringComparison.Ordinal);
        return wildcards.Contains(normalizedName[(dot + 1)..]);
    }

    public static int Count => s_list.Value.Rules.Count + s_list.Value.Wildcards.Count;

    private static (HashSet<string>, HashSet<string>, HashSet<string>) Load()
    {
        var rules = new HashSet<string>(StringComparer.Ordinal);
        var wildcards = new HashSet<string>(StringComparer.Ordinal);
        var exceptions = new HashSet<string>(StringComparer.Ordinal);
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
                exceptions.Add(line[1..]);
            }
            else if (line.StartsWith("*.", StringComparison.Ordinal))
            {
                wildcards.Add(line[2..]);
            }
            else
            {
                rules.Add(line);
            }
        }

        return (rules, wildcards, exceptions);
    }
}
