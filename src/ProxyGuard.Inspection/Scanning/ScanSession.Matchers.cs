using System.Buffers;
using System.Text.RegularExpressions;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>The matchers of a layer: literal anchors (bytes: the SIMD prefilter; chars: SearchValues groups), URL passwords, policy rules.</summary>
internal sealed partial class ScanSession
{
    private void RunAnchorsBytes(ReadOnlySpan<byte> bytes, ref char[]? chars)
    {
        var filter = _core.BytePrefilter;
        if (filter is null || bytes.Length < BytePrefilter.MinLiteral)
        {
            return;
        }

        Span<int> hits = stackalloc int[128];
        _anchorPass++;
        var from = 0;
        while (from < bytes.Length && Error is null)
        {
            var count = filter.Collect(bytes, ref from, hits);
            Tick(count * ConfirmCost);
            for (var k = 0; k < count; k++)
            {
                var hit = hits[k];
                if (!filter.MayMatch(bytes, hit))
                {
                    continue;
                }

                for (var table = 0; table < BytePrefilter.Tables; table++)
                {
                    if (filter.Lookup(bytes, hit, table) is { } entries)
                    {
                        ConfirmBytes(bytes, hit, entries, ref chars);
                    }
                }
            }
        }
    }

    private void ConfirmBytes(ReadOnlySpan<byte> bytes, int hit, BytePrefilter.Entry[] entries, ref char[]? chars)
    {
        foreach (var entry in entries)
        {
            var start = hit - entry.Offset;
            if (start < 0 || !entry.MatchesAt(bytes, start))
            {
                continue;
            }

            foreach (var detector in entry.Detectors)
            {
                if (!IsActive(detector) || AlreadyFound(detector.Id))
                {
                    continue;
                }

                Tick(ConfirmCost);
                if (detector.TryMatch(Widen(bytes, ref chars), start, entry.Length, false, Memo(detector), out _, out _))
                {
                    AddFinding(detector.Id, ContentAction.Deny);
                }
            }
        }
    }

    private void RunUrlPasswordBytes(ReadOnlySpan<byte> bytes)
    {
        var detector = BuiltinCatalog.UrlPassword;
        if (!IsActive(detector) || AlreadyFound(detector.Id))
        {
            return;
        }

        var position = 0;
        while (position < bytes.Length)
        {
            var index = bytes[position..].IndexOf((byte)'@');
            if (index < 0)
            {
                return;
            }

            var hit = position + index;
            Tick(index + 16);
            if (UrlPasswordDetector.MatchesAt(bytes, hit))
            {
                AddFinding(detector.Id, ContentAction.Deny);
                return;
            }

            position = hit + 1;
        }
    }

    private void RunAnchors(ReadOnlySpan<char> text, AnchorTable? table)
    {
        if (table is null)
        {
            return;
        }

        foreach (var group in table.Groups)
        {
            _anchorPass++;
            RunAnchorGroup(text, table, group);
        }
    }

    private void RunAnchorGroup(ReadOnlySpan<char> text, AnchorTable table, SearchValues<string> group)
    {
        var position = 0;
        while (position < text.Length && Error is null)
        {
            var index = text[position..].IndexOfAny(group);
            if (index < 0)
            {
                return;
            }

            var hit = position + index;
            if (table.TryGetEntries(text[hit], out var entries))
            {
                var rest = text[hit..];
                foreach (var entry in entries)
                {
                    if (!rest.StartsWith(entry.Anchor, table.Comparison))
                    {
                        continue;
                    }

                    foreach (var detector in entry.Detectors)
                    {
                        if (!IsActive(detector) || AlreadyFound(detector.Id))
                        {
                            continue;
                        }

                        Tick(ConfirmCost);
                        if (detector.TryMatch(text, hit, entry.Anchor.Length, _ignoreCase, Memo(detector), out _, out _))
                        {
                            AddFinding(detector.Id, ContentAction.Deny);
                        }
                    }
                }
            }

            position = hit + 1;
        }
    }

    private void RunUrlPassword(ReadOnlySpan<char> text)
    {
        var detector = BuiltinCatalog.UrlPassword;
        if (!IsActive(detector))
        {
            return;
        }

        var position = 0;
        while (position < text.Length)
        {
            var index = text[position..].IndexOf('@');
            if (index < 0)
            {
                return;
            }

            var hit = position + index;
            Tick(index + 16);
            if (detector.TryMatch(text, hit, 1, _ignoreCase, out _, out _))
            {
                AddFinding(detector.Id, ContentAction.Deny);
                return;
            }

            position = hit + 1;
        }
    }

    private void RunRules(ReadOnlySpan<char> text, LayerMap? map)
    {
        foreach (var rule in _core.Rules)
        {
            if (!_ruleActive![rule.Index])
            {
                continue;
            }

            var action = rule.Rule.Action;
            try
            {
                RunRule(text, map, rule, action);
            }
            catch (RegexMatchTimeoutException)
            {
                Fail(ScanResult.BudgetExceededReason, ScanErrorKind.BudgetExceeded);
            }

            if (Error is not null)
            {
                return;
            }
        }
    }

    private void RunRule(ReadOnlySpan<char> text, LayerMap? map, CompiledRule rule, ContentAction action)
    {
        foreach (var match in rule.Regex.EnumerateMatches(text))
        {
            Tick(match.Length + 1);
            if (Error is not null)
            {
                return;
            }

            if (match.Length == 0)
            {
                continue;
            }

            AddFinding(rule.Rule.Name, action);
            if (action != ContentAction.Redact)
            {
                break;
            }

            var (start, end) = LayerMap.ToRoot(map, match.Index, match.Index + match.Length);
            _redactions ??= [];
            _redactions.Add(new Redaction(start, end, rule.Rule.Name));
        }
    }
}
