using System.Globalization;

namespace ProxyGuard.Policy.Validation;

/// <summary>
/// Load-time CPU budget for <c>content.rules[].pattern</c>. Custom rules run on sandbox-chosen bodies with the
/// linear-time (NonBacktracking) engine, whose cost per input character still grows with the automaton that counted
/// repetitions unfold into: <c>[a-z0-9]{1,9000}z</c> costs about 25 s per MiB, <c>(a[a-z]{1,20}){1,5}z</c> 0.8 s.
/// Unbounded repetitions (<c>*</c>, <c>+</c>, <c>?</c>, also nested) stay cheap and are not limited.
/// <para>
/// The budget, measured by a small scanner of the pattern's syntax (not .NET's parser, which is not public):
/// the bound of a counted repetition is its upper bound (<c>{n,m}</c>: m; <c>{n}</c> and <c>{n,}</c>: n);
/// its weight is its bound times the bounds of the counted repetitions around it. The weights of a pattern may
/// add up to at most <see cref="MaxWeight"/>, and a counted repetition inside another may multiply to at most
/// <see cref="MaxNestedProduct"/>. Patterns are at most <see cref="MaxPatternLength"/> characters. Within these
/// bounds the worst case measured is about 0.1 s per MiB of body on one core.
/// </para>
/// </summary>
internal static class RegexCost
{
    public const int MaxWeight = 100;
    public const int MaxNestedProduct = 32;
    public const int MaxPatternLength = 1024;

    /// <summary>Returns null when within budget, otherwise the reason and the 0-based offset in the pattern it refers to.</summary>
    public static (string Message, int Offset)? Check(string pattern)
    {
        if (pattern.Length > MaxPatternLength)
        {
            return ($"pattern is longer than {MaxPatternLength} characters", 0);
        }

        var root = Parse(pattern);
        long total = 0;
        return Walk(root, 1, null, ref total);
    }

    private static (string, int)? Walk(Group group, long multiplier, Quantifier? outer, ref long total)
    {
        foreach (var q in group.Quantifiers)
        {
            if (Charge(q, multiplier, outer, ref total) is { } error)
            {
                return error;
            }
        }

        foreach (var child in group.Children)
        {
            var counted = child.Quantifier is { Bound: > 1 };
            if (counted && Charge(child.Quantifier!, multiplier, outer, ref total) is { } error)
            {
                return error;
            }

            var result = Walk(child, multiplier * (counted ? child.Quantifier!.Bound : 1), counted ? child.Quantifier : outer, ref total);
            if (result is not null)
            {
                return result;
            }
        }

        return null;
    }

    private static (string, int)? Charge(Quantifier q, long multiplier, Quantifier? outer, ref long total)
    {
        if (q.Bound <= 1)
        {
            return null;
        }

        var product = q.Bound * multiplier;
        if (outer is not null && product > MaxNestedProduct)
        {
            return ($"pattern is too costly to scan: the counted repetition '{q.Text}' inside '{outer.Text}' multiplies to {product}; nested counted repetitions may multiply to at most {MaxNestedProduct}", q.Offset);
        }

        total += product;
        if (total > MaxWeight)
        {
            return ($"pattern is too costly to scan: its counted repetitions add up to more than {MaxWeight} (at '{q.Text}'); use smaller bounds or an unbounded repetition (+ or *)", q.Offset);
        }

        return null;
    }

    private sealed class Group
    {
        public List<Quantifier> Quantifiers { get; } = [];

        public List<Group> Children { get; } = [];

        public Quantifier? Quantifier { get; set; }
    }

    private sealed record Quantifier(long Bound, string Text, int Offset);

    /// <summary>
    /// A conservative scan: escapes and character classes are skipped, groups nest, and every quantifier is
    /// attributed to the group it follows (or to the enclosing group for a single atom). Malformed syntax is left
    /// to the regex parser, which reports it afterwards.
    /// </summary>
    private static Group Parse(string p)
    {
        var root = new Group();
        var stack = new Stack<Group>();
        var current = root;
        Group? justClosed = null;
        var i = 0;
        while (i < p.Length)
        {
            var c = p[i];
            switch (c)
            {
                case '\\':
                    i = SkipEscape(p, i);
                    justClosed = null;
                    continue;
                case '[':
                    i = SkipClass(p, i);
                    justClosed = null;
                    continue;
                case '(':
                    if (i + 2 < p.Length && p[i + 1] == '?' && p[i + 2] == '#')
                    {
                        var end = p.IndexOf(')', i);
                        i = end < 0 ? p.Length : end + 1;
                        continue;
                    }

                    stack.Push(current);
                    var group = new Group();
                    current.Children.Add(group);
                    current = group;
                    justClosed = null;
                    i++;
                    continue;
                case ')':
                    justClosed = stack.Count > 0 ? current : null;
                    current = stack.Count > 0 ? stack.Pop() : current;
                    i++;
                    continue;
                case '*' or '+' or '?':
                    justClosed = null;
                    i++;
                    continue;
                case '{':
                    if (TryQuantifier(p, i, out var bound, out var end2))
                    {
                        var q = new Quantifier(bound, p[i..end2], i);
                        if (justClosed is not null)
                        {
                            justClosed.Quantifier = q;
                        }
                        else
                        {
                            current.Quantifiers.Add(q);
                        }

                        justClosed = null;
                        i = end2;
                        continue;
                    }

                    break;
            }

            justClosed = null;
            i++;
        }

        return root;
    }

    private static bool TryQuantifier(string p, int start, out long bound, out int end)
    {
        bound = 0;
        end = start;
        var i = start + 1;
        var minStart = i;
        while (i < p.Length && char.IsAsciiDigit(p[i]))
        {
            i++;
        }

        if (i == minStart || i >= p.Length)
        {
            return false;
        }

        var min = ParseBound(p[minStart..i]);
        long? max = null;
        if (p[i] == ',')
        {
            i++;
            var maxStart = i;
            while (i < p.Length && char.IsAsciiDigit(p[i]))
            {
                i++;
            }

            if (i > maxStart)
            {
                max = ParseBound(p[maxStart..i]);
            }
        }

        if (i >= p.Length || p[i] != '}')
        {
            return false;
        }

        bound = Math.Max(min, max ?? min);
        end = i + 1;
        return true;
    }

    private static long ParseBound(string digits) =>
        digits.Length > 10 ? int.MaxValue : Math.Min(int.MaxValue, long.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture));

    private static int SkipEscape(string p, int i)
    {
        i++; // the backslash
        if (i >= p.Length)
        {
            return i;
        }

        var e = p[i];
        i++;
        if (e is 'p' or 'P' && i < p.Length && p[i] == '{')
        {
            var end = p.IndexOf('}', i);
            return end < 0 ? p.Length : end + 1;
        }

        if (e is 'k' && i < p.Length && p[i] is '<' or '\'')
        {
            var end = p.IndexOf(p[i] == '<' ? '>' : '\'', i + 1);
            return end < 0 ? p.Length : end + 1;
        }

        return i;
    }

    private static int SkipClass(string p, int i)
    {
        i++; // '['
        if (i < p.Length && p[i] == '^')
        {
            i++;
        }

        if (i < p.Length && p[i] == ']')
        {
            i++; // a leading ']' is a literal
        }

        var depth = 1;
        while (i < p.Length)
        {
            switch (p[i])
            {
                case '\\':
                    i = SkipEscape(p, i);
                    continue;
                case '[' when i > 0 && p[i - 1] == '-':
                    depth++; // character class subtraction: [a-z-[aeiou]]
                    break;
                case ']':
                    depth--;
                    if (depth == 0)
                    {
                        return i + 1;
                    }

                    break;
            }

            i++;
        }

        return i;
    }
}
