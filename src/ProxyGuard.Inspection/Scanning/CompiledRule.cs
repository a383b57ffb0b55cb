using System.Text.RegularExpressions;

namespace ProxyGuard.Inspection.Scanning;

internal sealed class CompiledRule
{
    public CompiledRule(CustomRule rule, int index)
    {
        Rule = rule;
        Index = index;
        try
        {
            Regex = new Regex(rule.Pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
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
