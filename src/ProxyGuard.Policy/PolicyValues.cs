using System.Globalization;
using System.Text.RegularExpressions;

namespace ProxyGuard.Policy;

/// <summary>Parsers for the value syntaxes of the policy file: sizes and durations.</summary>
public static partial class PolicyValues
{
    /// <summary>Parses a size: plain bytes (<c>1048576</c>), or a number with <c>B</c>, <c>KiB</c>, <c>MiB</c>, <c>GiB</c>.</summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var match = SizePattern().Match(text ?? string.Empty);
        if (!match.Success || !long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        long multiplier = match.Groups[2].Value switch
        {
            "KiB" => 1024,
            "MiB" => 1024 * 1024,
            "GiB" => 1024L * 1024 * 1024,
            _ => 1,
        };
        if (number > long.MaxValue / multiplier)
        {
            return false;
        }

        bytes = number * multiplier;
        return true;
    }

    /// <summary>Parses a duration: a whole number followed by <c>ms</c>, <c>s</c>, <c>m</c> or <c>h</c> (<c>30s</c>, <c>5m</c>, <c>1h</c>).</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var match = DurationPattern().Match(text ?? string.Empty);
        if (!match.Success || !long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > 100_000_000)
        {
            return false;
        }

        duration = match.Groups[2].Value switch
        {
            "ms" => TimeSpan.FromMilliseconds(number),
            "s" => TimeSpan.FromSeconds(number),
            "m" => TimeSpan.FromMinutes(number),
            _ => TimeSpan.FromHours(number),
        };
        return true;
    }

    [GeneratedRegex(@"\A([0-9]{1,19})(B|KiB|MiB|GiB)?\z")]
    private static partial Regex SizePattern();

    [GeneratedRegex(@"\A([0-9]{1,9})(ms|s|m|h)\z")]
    private static partial Regex DurationPattern();
}
