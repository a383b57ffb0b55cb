using System.CommandLine;
using System.Globalization;

namespace ProxyGuard.Commands;

/// <summary>Flag checks shared by the commands, so a mistake is a usage error (exit 2) with one line, not an exception.</summary>
internal static class OptionChecks
{
    /// <summary>An explicitly empty value (<c>--data-dir ""</c>) is refused: it would otherwise mean "the current directory" to some calls and fail in others.</summary>
    public static T NotEmpty<T>(this T option)
        where T : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && string.IsNullOrWhiteSpace(result.Tokens[^1].Value))
            {
                result.AddError($"{option.Name}: must not be empty");
            }
        });
        return option;
    }

    /// <summary>
    /// A count or an id: digits only (0 or more). The parser's own message names a .NET type
    /// ("as expected type 'System.Int64'"); this one says what is expected.
    /// </summary>
    public static Option<long> WholeNumber(this Option<long> option, string what)
    {
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : string.Empty;
            if (long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }

            result.AddError($"{option.Name}: expected {what} (a whole number, 0 or more), got '{Shown(text)}'");
            return 0;
        };
        return option;
    }

    /// <summary>A bounded count: digits only, from 0 to <paramref name="max"/>, with the same one-line message as <see cref="WholeNumber"/>.</summary>
    public static Option<int> Count(this Option<int> option, string what, int max)
    {
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : string.Empty;
            if (int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value <= max)
            {
                return value;
            }

            result.AddError($"{option.Name}: expected {what} (a whole number from 0 to {max}), got '{Shown(text)}'");
            return 0;
        };
        return option;
    }

    /// <summary>Accepts only <paramref name="choices"/>; anything else is refused with the valid values and, when one is close, "did you mean".</summary>
    public static T OneOf<T>(this T option, IReadOnlyList<string> choices, IReadOnlyDictionary<string, string>? aliases = null)
        where T : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0)
            {
                return;
            }

            var value = result.Tokens[^1].Value;
            if (choices.Contains(value, StringComparer.Ordinal))
            {
                return;
            }

            var suggestion = DidYouMean(value, choices, aliases);
            result.AddError($"{option.Name}: '{Shown(value)}' is not one of {string.Join(", ", choices)}" +
                            (suggestion is null ? string.Empty : $"; did you mean '{suggestion}'?"));
        });
        return option;
    }

    /// <summary>The choice <paramref name="value"/> most likely meant (an alias, a different case, a small edit), or null.</summary>
    internal static string? DidYouMean(string value, IReadOnlyList<string> choices, IReadOnlyDictionary<string, string>? aliases = null)
    {
        var normal = value.Trim().ToLowerInvariant().Replace('_', '-').Replace(' ', '-');
        if (aliases is not null && aliases.TryGetValue(normal, out var alias))
        {
            return alias;
        }

        if (choices.FirstOrDefault(c => c.Equals(normal, StringComparison.Ordinal)) is { } exact)
        {
            return exact;
        }

        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var choice in choices)
        {
            var distance = Distance(normal, choice);
            if (distance < bestDistance)
            {
                (best, bestDistance) = (choice, distance);
            }
        }

        // Close enough to be a typo ("alow"), not a different word.
        if (best is not null && bestDistance <= Math.Max(2, best.Length / 2))
        {
            return best;
        }

        // An inflection ("denied", "allowed"): the one choice that shares the first three letters.
        var stem = choices.Where(c => CommonPrefix(normal, c) >= 3).ToList();
        return stem.Count == 1 ? stem[0] : null;
    }

    private static int CommonPrefix(string a, string b)
    {
        var n = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n])
        {
            n++;
        }

        return n;
    }

    /// <summary>A value as it may be quoted in a message: one line, bounded.</summary>
    internal static string Shown(string value)
    {
        var clean = ProxyGuard.Audit.EventText.Clean(value) ?? string.Empty;
        return clean.Length > 80 ? clean[..80] + "..." : clean;
    }

    private static int Distance(string a, string b)
    {
        if (a.Length > 64 || b.Length > 64)
        {
            return int.MaxValue;
        }

        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
