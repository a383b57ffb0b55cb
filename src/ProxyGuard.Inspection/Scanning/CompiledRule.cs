using System.Text.RegularExpressions;

namespace ProxyGuard.Inspection.Scanning;

internal sealed class CompiledRule
{
    /// <param name="timeout">The scan budget: also bounds one regex search (custom patterns are sandbox-facing CPU).</param>
    public CompiledRule(CustomRule rule, int index, TimeSpan timeout)
    {
        Rule = rule;
        Index = index;
        try
        {
            Regex = new Regex(rule.Pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant,
                timeout == Timeout.InfiniteTimeSpan || timeout <= TimeSpan.Zero ? Regex.InfiniteMatchTimeout : timeout);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"content rule '{rule.Name}': invalid pattern: {ex.Message}", nameof(rule), ex);
        }
        catch (NotSupportedException ex)
        {
            throw new ArgumentException($"content rule '{rule.Name}': pattern not supported in linear-time mode: {ex.Message}", nameof(rule), ex);
        }
    }

    public CustomRule Rule { get; }

    public int Index { get; }

    public Regex Regex { get; }
}
