using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace ProxyGuard.Policy.Yaml;

/// <summary>
/// Reads one YAML document into a <see cref="YNode"/> tree with positions, reporting syntax errors, duplicate keys,
/// non-scalar keys, tags, multiple documents and alias bombs as diagnostics instead of throwing.
/// </summary>
internal static partial class YamlTreeReader
{
    /// <summary>
    /// Nodes (and 64-character runs of text) a document may expand to: this, plus one per four characters of its text
    /// (about what a policy written out in full holds, so a 10,000-rule policy loads). Aliases cannot push a document
    /// much past its own size.
    /// </summary>
    private const long MaxExpandedNodes = 200_000;

    /// <summary>
    /// Deepest nesting of lists and mappings accepted (a policy needs about 5). Deeper documents are refused before
    /// the recursive reader could exhaust the stack.
    /// </summary>
    public const int MaxDepth = 64;

    /// <summary>Keys of a mapping checked for duplicates by a linear search; past this, with a dictionary.</summary>
    private const int SmallMapping = 8;

    public static YNode? Read(string text, string file, List<PolicyDiagnostic> diagnostics)
    {
        var parser = new Parser(new StringReader(text));
        var state = new State(file, diagnostics, MaxExpandedNodes + (text.Length / 4));
        try
        {
            parser.Consume<StreamStart>();
            if (parser.Accept<StreamEnd>(out _))
            {
                diagnostics.Add(new PolicyDiagnostic(file, 1, 1, "the file is empty"));
                return null;
            }

            parser.Consume<DocumentStart>();
            var root = ReadNode(parser, state);
            parser.Consume<DocumentEnd>();
            if (parser.Accept<DocumentStart>(out var second))
            {
                diagnostics.Add(new PolicyDiagnostic(file, (int)second.Start.Line, (int)second.Start.Column, "only one YAML document is allowed"));
                return null;
            }

            return root;
        }
        catch (YamlException ex) when (ex.Message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FindIndentationTab(text, (int)ex.Start.Line) is { } tab)
        {
            // The parser reports a tab where the surrounding construct started (often 1:1): point at the tab itself.
            diagnostics.Add(new PolicyDiagnostic(file, tab.Line, tab.Column, "YAML syntax error: a tab character in indentation; YAML indents with spaces only"));
            return null;
        }
        catch (YamlException ex)
        {
            diagnostics.Add(new PolicyDiagnostic(file, Math.Max(1, (int)ex.Start.Line), Math.Max(1, (int)ex.Start.Column), "YAML syntax error: " + CleanMessage(ex.Message)));
            return null;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner throws these for some malformed flow collections and for invalid tags such as
            // "!!+" (found by fuzzing, fuzz/regressions/policy); report where parsing stopped.
            diagnostics.Add(new PolicyDiagnostic(file, Math.Max(1, state.LastLine), Math.Max(1, state.LastColumn), "YAML syntax error: malformed document after this point (check brackets, braces and quotes)"));
            return null;
        }
    }

    /// <summary>The first tab in a line's leading whitespace, from line <paramref name="fromLine"/> on (1-based positions).</summary>
    private static (int Line, int Column)? FindIndentationTab(string text, int fromLine)
    {
        var line = 1;
        var column = 1;
        var leading = true;
        foreach (var ch in text)
        {
            if (ch == '\n')
            {
                line++;
                column = 1;
                leading = true;
                continue;
            }

            if (leading && ch == '\t' && line >= fromLine)
            {
                return (line, column);
            }

            leading &= ch is ' ' or '\t' or '\r';
            column++;
        }

        return null;
    }

    private static string CleanMessage(string message)
    {
        var cleaned = PositionPrefix().Replace(message, string.Empty).Trim();
        return cleaned.Length == 0 ? message : char.ToLowerInvariant(cleaned[0]) + cleaned[1..];
    }

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\):\s*")]
    private static partial Regex PositionPrefix();

    private static YNode ReadNode(IParser parser, State state)
    {
        var ev = parser.Current ?? throw new YamlException("unexpected end of the document");
        var line = (int)ev.Start.Line;
        var column = (int)ev.Start.Column;
        state.LastLine = line;
        state.LastColumn = column;
        switch (ev)
        {
            case AnchorAlias alias:
                parser.MoveNext();
                if (state.Anchors.TryGetValue(alias.Value.Value, out var target))
                {
                    state.Count(state.Sizes[target]);
                    return target;
                }

                state.Error(line, column, $"unknown alias '*{alias.Value.Value}'");
                return new YInvalid(line, column);

            case Scalar scalar:
                parser.MoveNext();
                CheckTag(scalar.Tag, line, column, state);
                var node = new YScalar(scalar.Value, scalar.Style, line, column);

                // Text counts too: every 64 characters weigh one node, so aliasing one large scalar many times is
                // bounded like any other expansion (memory and the diagnostics that quote it).
                var weight = 1 + (scalar.Value.Length / 64);
                Register(scalar.Anchor, node, weight, state);
                state.Count(weight);
                return node;

            case SequenceStart seq:
            {
                state.Enter(ev);
                parser.MoveNext();
                CheckTag(seq.Tag, line, column, state);
                var before = state.Expanded;
                var items = new List<YNode>();
                while (!parser.Accept<SequenceEnd>(out _))
                {
                    items.Add(ReadNode(parser, state));
                }

                parser.MoveNext();
                state.Depth--;
                var result = new YSequence(items, line, column);
                state.Count(1);
                Register(seq.Anchor, result, state.Expanded - before, state);
                return result;
            }

            case MappingStart map:
            {
                state.Enter(ev);
                parser.MoveNext();
                CheckTag(map.Tag, line, column, state);
                var before = state.Expanded;
                var entries = new List<KeyValuePair<YScalar, YNode>>();

                // Duplicate keys: a linear search while the mapping is small (a rule has a handful of keys; no
                // dictionary per mapping), a dictionary once it grows, so a mapping of many keys stays linear.
                Dictionary<string, YScalar>? seen = null;
                while (!parser.Accept<MappingEnd>(out _))
                {
                    var keyNode = ReadNode(parser, state);
                    var value = ReadNode(parser, state);
                    if (keyNode is not YScalar key)
                    {
                        state.Error(keyNode.Line, keyNode.Column, "mapping keys must be plain strings");
                        continue;
                    }

                    if (FindKey(entries, seen, key.Value) is { } first)
                    {
                        state.Error(key.Line, key.Column, $"duplicate key '{key.Value}' (first defined at line {first.Line})");
                        continue;
                    }

                    entries.Add(new KeyValuePair<YScalar, YNode>(key, value));
                    if (seen is not null)
                    {
                        seen[key.Value] = key;
                    }
                    else if (entries.Count > SmallMapping)
                    {
                        seen = new Dictionary<string, YScalar>(entries.Count * 2, StringComparer.Ordinal);
                        foreach (var entry in entries)
                        {
                            seen[entry.Key.Value] = entry.Key;
                        }
                    }
                }

                parser.MoveNext();
                state.Depth--;
                var result = new YMapping(entries, line, column);
                state.Count(1);
                Register(map.Anchor, result, state.Expanded - before, state);
                return result;
            }

            default:
                throw new YamlException(ev.Start, ev.End, $"unexpected YAML event {ev.GetType().Name}");
        }
    }

    private static YScalar? FindKey(List<KeyValuePair<YScalar, YNode>> entries, Dictionary<string, YScalar>? seen, string key)
    {
        if (seen is not null)
        {
            return seen.GetValueOrDefault(key);
        }

        foreach (var entry in entries)
        {
            if (string.Equals(entry.Key.Value, key, StringComparison.Ordinal))
            {
                return entry.Key;
            }
        }

        return null;
    }

    private static void CheckTag(TagName tag, int line, int column, State state)
    {
        if (!tag.IsEmpty && !tag.IsNonSpecific)
        {
            state.Error(line, column, $"YAML tags are not supported ('{tag.Value}')");
        }
    }

    private static void Register(AnchorName anchor, YNode node, long size, State state)
    {
        if (!anchor.IsEmpty)
        {
            state.Anchors[anchor.Value] = node;
            state.Sizes[node] = Math.Max(1, size);
        }
    }

    private sealed class State(string file, List<PolicyDiagnostic> diagnostics, long maxExpanded)
    {
        public Dictionary<string, YNode> Anchors { get; } = new(StringComparer.Ordinal);

        public Dictionary<YNode, long> Sizes { get; } = new(ReferenceEqualityComparer.Instance);

        public long Expanded { get; private set; }

        public bool Failed { get; private set; }

        public int LastLine { get; set; }

        public int LastColumn { get; set; }

        public int Depth { get; set; }

        public void Enter(ParsingEvent start)
        {
            if (++Depth > MaxDepth)
            {
                throw new YamlException(start.Start, start.End, $"lists and mappings are nested more than {MaxDepth} deep");
            }
        }

        public void Count(long nodes)
        {
            Expanded += nodes;
            if (Expanded > maxExpanded)
            {
                throw new YamlException($"the document expands to more than {maxExpanded} nodes, counting 64 characters of text as one (alias bomb?)");
            }
        }

        public void Error(int line, int column, string message)
        {
            diagnostics.Add(new PolicyDiagnostic(file, line, column, message));
            Failed = true;
        }
    }
}
