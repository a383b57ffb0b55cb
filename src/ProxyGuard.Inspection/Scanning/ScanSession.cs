using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;
using ProxyGuard.Inspection.Decoding;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>The state of one scan: findings, redactions, decode budget. Not thread-safe; one per call.</summary>
internal sealed class ScanSession
{
    public const string LimitError = "decompression limit exceeded";
    public const string DepthError = "decode depth limit exceeded";

    /// <summary>Units of work (about one per character scanned or decoded) between two looks at the clock and the token.</summary>
    private const long CheckEvery = 16 * 1024;

    /// <summary>Work units charged for one detector confirmation (a regex over a window of up to ~600 characters).</summary>
    private const int ConfirmCost = 256;
    private const int MinOutputForRatio = 1024 * 1024;
    private const int SampleChars = 128;

    /// <summary>Decoded base64 runs up to this many bytes are decoded on the stack.</summary>
    private const int SmallRun = 256;

    private static readonly DetectorMemo _noMemo = new();

    private readonly ScannerCore _core;
    private readonly ScanLocation _location;
    private readonly bool _ignoreCase;
    private readonly bool[]? _exempt;
    private readonly bool _vaultExempt;
    private readonly bool[]? _ruleActive;
    private readonly bool _bytePath;
    private readonly int _maxDepth;
    private readonly CancellationToken _cancellation;
    private readonly long _deadline;
    private List<Finding>? _findings;
    private List<Redaction>? _redactions;
    private long _decoded;
    private long _work;
    private long _nextCheck;
    private DetectorMemo[]? _memos;
    private int _anchorPass;

    public ScanSession(ScannerCore core, string host, ScanLocation location, CancellationToken cancellation = default)
    {
        _core = core;
        _cancellation = cancellation;
        _deadline = core.Deadline();
        _location = location;
        _ignoreCase = location == ScanLocation.Host;
        _maxDepth = Math.Max(0, core.Options.MaxDepth);
        host ??= string.Empty;

        foreach (var exemption in core.Options.Exemptions)
        {
            if (!exemption.AppliesToHost(host))
            {
                continue;
            }

            foreach (var id in exemption.DetectorIds)
            {
                if (id == KnownSecretDetector.DetectorId)
                {
                    _vaultExempt = true;
                }
                else if (core.DetectorIndexById.TryGetValue(id, out var index))
                {
                    _exempt ??= new bool[core.Enabled.Length];
                    _exempt[index] = true;
                }
            }
        }

        if (core.Rules.Length > 0)
        {
            _ruleActive = new bool[core.Rules.Length];
            foreach (var rule in core.Rules)
            {
                _ruleActive[rule.Index] = rule.Rule.AppliesToHost(host) && !IsNameExempt(core, host, rule.Rule.Name);
            }
        }

        // Bodies are scanned as bytes unless a policy rule (a regex over chars) or case-insensitive matching applies.
        _bytePath = !_ignoreCase && (_ruleActive is null || !_ruleActive.Contains(true));
    }

    public string? Error { get; private set; }

    public ScanErrorKind ErrorKind { get; private set; }

    public List<Redaction>? Redactions => _redactions;

    public ScanResult ToResult(Func<List<Redaction>, (byte[]? Body, string? Text)>? rewrite)
    {
        if (Error is not null)
        {
            return new ScanResult(_findings, Error, null, null, ErrorKind);
        }

        if (_findings is null)
        {
            return ScanResult.Clean;
        }

        byte[]? body = null;
        string? text = null;
        if (_redactions is { Count: > 0 } && rewrite is not null)
        {
            (body, text) = rewrite(_redactions);
        }

        return new ScanResult(_findings, null, body, text);
    }

    public void Fail(string error, ScanErrorKind kind)
    {
        if (Error is null)
        {
            Error = error;
            ErrorKind = kind;
        }
    }

    /// <summary>
    /// Counts <paramref name="units"/> of work; every <see cref="CheckEvery"/> units, ends the scan (with an error)
    /// when the request was aborted or the scan budget is spent. Every loop of the scanner calls it with the size of
    /// what it just did, so the checks come at bounded intervals of work.
    /// </summary>
    public void Tick(long units)
    {
        _work += units;
        if (_work >= _nextCheck)
        {
            _nextCheck = _work + CheckEvery;
            Check();
        }
    }

    /// <summary>Looks at the token and the clock now; false (and an error) when the scan must stop.</summary>
    public bool Check()
    {
        if (Error is null)
        {
            if (_cancellation.IsCancellationRequested)
            {
                Fail(ScanResult.CanceledReason, ScanErrorKind.Canceled);
            }
            else if (_deadline != long.MaxValue && _core.Options.TimeProvider.GetTimestamp() > _deadline)
            {
                Fail(ScanResult.BudgetExceededReason, ScanErrorKind.BudgetExceeded);
            }
        }

        return Error is null;
    }

    /// <summary>Counts decoded bytes against the per-scan budget; false (and an error) when it is exhausted.</summary>
    public bool Charge(long bytes)
    {
        _decoded += bytes;
        Tick(bytes);
        if (_decoded > _core.Options.MaxDecodedBytes)
        {
            Fail(LimitError, ScanErrorKind.DecodeLimit);
            return false;
        }

        return true;
    }

    public long DecompressLimit(int inputLength)
    {
        var ratioLimit = Math.Max((long)inputLength * Math.Max(1, _core.Options.MaxExpansionRatio), MinOutputForRatio);
        return Math.Max(0, Math.Min(ratioLimit, _core.Options.MaxDecodedBytes - _decoded));
    }

    /// <summary>Decompresses one content-coding step, charging the budget. Sets <see cref="Error"/> on failure.</summary>
    public bool TryDecompress(byte[] array, int offset, int count, string coding, out PooledBytes output)
    {
        var status = Decompressor.Decompress(array, offset, count, coding, DecompressLimit(count), out output);
        switch (status)
        {
            case DecompressStatus.Ok:
                if (!Charge(output.Length))
                {
                    output.Dispose();
                    return false;
                }

                return true;
            case DecompressStatus.LimitExceeded:
                Fail(LimitError, ScanErrorKind.DecodeLimit);
                return false;
            default:
                Fail("undecodable content-encoding: " + coding, ScanErrorKind.Undecodable);
                return false;
        }
    }

    /// <summary>
    /// Scans bytes as a document of the given content type. Read as Latin-1, so char index = byte index: the byte
    /// path (<see cref="ScanLayerBytes"/>) matches on the bytes and widens them to <c>char</c> only when a detector
    /// or decoder needs text.
    /// </summary>
    public void ScanDocument(ReadOnlySpan<byte> bytes, string? contentType, int depth, LayerMap? map)
    {
        if (Error is not null || bytes.IsEmpty)
        {
            return;
        }

        char[]? chars = null;
        try
        {
            if (_bytePath)
            {
                ScanLayerBytes(bytes, depth, map, ref chars);
            }
            else
            {
                ScanLayer(Widen(bytes, ref chars), depth, map);
            }

            if (Error is not null || depth >= _maxDepth)
            {
                return;
            }

            if (MediaType.IsForm(contentType))
            {
                ScanUnescaped(Widen(bytes, ref chars), depth + 1, map, json: false, plusAsSpace: true);
            }
            else if (MediaType.IsMultipart(contentType) && MediaType.Parameter(contentType, "boundary") is { } boundary)
            {
                ScanMultipart(bytes, Widen(bytes, ref chars), boundary, depth, map);
            }
        }
        finally
        {
            if (chars is not null)
            {
                ArrayPool<char>.Shared.Return(chars);
            }
        }
    }

    /// <summary>The Latin-1 text of <paramref name="bytes"/>, widened into <paramref name="chars"/> on first use.</summary>
    private static ReadOnlySpan<char> Widen(ReadOnlySpan<byte> bytes, ref char[]? chars)
    {
        if (chars is null)
        {
            chars = ArrayPool<char>.Shared.Rent(bytes.Length);
            Encoding.Latin1.GetChars(bytes, chars);
        }

        return chars.AsSpan(0, bytes.Length);
    }

    /// <summary>
    /// <see cref="ScanLayer"/> for a layer of bytes without active policy rules: the same matchers and decoders, run on
    /// the bytes. Detectors confirm a hit on the widened text (index for index), so their results are the same.
    /// </summary>
    private void ScanLayerBytes(ReadOnlySpan<byte> bytes, int depth, LayerMap? map, ref char[]? chars)
    {
        Tick(bytes.Length);
        if (Error is not null)
        {
            return;
        }

        RunAnchorsBytes(bytes, ref chars);
        if (_core.UrlPasswordEnabled)
        {
            RunUrlPasswordBytes(bytes);
        }

        RunEscapesBytes(bytes, depth, map);
        RunBase64Bytes(bytes, depth, map);
        RunWrappedBase64Bytes(bytes, depth, map);
    }

    /// <summary>Base64 wrapped at lines shorter than the run finder joins (4 to 39 characters), decoded as one run.</summary>
    private void RunWrappedBase64Bytes(ReadOnlySpan<byte> text, int depth, LayerMap? map)
    {
        var position = 0;
        while (Error is null && WrappedBase64.FindNext(text, position, out var start, out var end))
        {
            Tick(end - position);
            HandleRunBytes(text[start..end], start, end, depth, map);
            position = end;
        }
    }

    private void RunWrappedBase64(ReadOnlySpan<char> text, int depth, LayerMap? map)
    {
        var position = 0;
        while (Error is null && WrappedBase64.FindNext(text, position, out var start, out var end))
        {
            Tick(end - position);
            HandleRun(text, start, end, depth, map);
            position = end;
        }
    }

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

    private void RunEscapesBytes(ReadOnlySpan<byte> text, int depth, LayerMap? map)
    {
        if (depth >= _maxDepth)
        {
            return;
        }

        var i = text.IndexOfAny((byte)'\\', (byte)'%');
        var windowStart = -1;
        var windowEnd = -1;
        var walk = default(WindowWalk);
        while (i >= 0 && Error is null)
        {
            var interesting = TextUnescaper.IsInterestingEscape(text, i, out var length);
            if (interesting)
            {
                Tick(length);
                var (start, end) = walk.Widen(text, i, length, windowStart >= 0 ? windowEnd : 0);

                if (windowStart >= 0 && start <= windowEnd)
                {
                    windowEnd = Math.Max(windowEnd, end);
                }
                else
                {
                    if (windowStart >= 0)
                    {
                        DecodeByteWindow(text, windowStart, windowEnd, depth + 1, map);
                    }

                    windowStart = start;
                    windowEnd = end;
                }
            }

            var next = i + length;
            if (next >= text.Length)
            {
                break;
            }

            var found = text[next..].IndexOfAny((byte)'\\', (byte)'%');
            i = found < 0 ? -1 : next + found;
        }

        if (windowStart >= 0)
        {
            DecodeByteWindow(text, windowStart, windowEnd, depth + 1, map);
        }
    }

    private void DecodeByteWindow(ReadOnlySpan<byte> text, int start, int end, int depth, LayerMap? map)
    {
        var window = ArrayPool<char>.Shared.Rent(end - start);
        try
        {
            var count = Encoding.Latin1.GetChars(text[start..end], window);
            DecodeSource(window.AsSpan(0, count), start, depth, map, json: true, plusAsSpace: false);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(window);
        }
    }

    private void RunBase64Bytes(ReadOnlySpan<byte> text, int depth, LayerMap? map)
    {
        var position = 0;
        while (Error is null && Base64RunFinder.FindNext(text, position, out var runStart, out var runEnd))
        {
            Tick(runEnd - position);
            HandleRunBytes(text[runStart..runEnd], runStart, runEnd, depth, map);
            position = runEnd;
        }
    }

    /// <summary>Runs every matcher over one layer of text, then the decoders that may reveal more layers.</summary>
    public void ScanLayer(ReadOnlySpan<char> text, int depth, LayerMap? map)
    {
        Tick(text.Length);
        if (Error is not null || text.IsEmpty)
        {
            return;
        }

        if (_ignoreCase)
        {
            RunAnchors(text, _core.HostTable);
        }
        else
        {
            RunAnchors(text, _core.CaseSensitive);
            RunAnchors(text, _core.Keywords);
        }

        if (_core.UrlPasswordEnabled)
        {
            RunUrlPassword(text, map);
        }

        if (_ruleActive is not null)
        {
            RunRules(text, map);
        }

        RunEscapes(text, depth, map);
        RunBase64(text, depth, map);
        RunWrappedBase64(text, depth, map);
    }

    /// <summary>Decodes the whole text (percent escapes, optionally JSON escapes and + as space) and scans the result.</summary>
    public void ScanUnescaped(ReadOnlySpan<char> text, int depth, LayerMap? map, bool json, bool plusAsSpace)
    {
        if (text.IndexOfAny('%', plusAsSpace ? '+' : '%', json ? '\\' : '%') < 0)
        {
            return;
        }

        DecodeWindow(text, 0, text.Length, depth, map, json, plusAsSpace);
    }

    /// <summary>Scans a layer built by the caller from pieces of the root, with an offsets map.</summary>
    public void ScanMapped(ReadOnlySpan<char> text, int[] offsets, int depth, int[]? ends = null)
    {
        ScanLayer(text, depth, ends is null ? LayerMap.Offsets(null, offsets, 0) : LayerMap.Joined(offsets, ends));
    }

    /// <summary>The memo of <paramref name="detector"/> for the current anchor pass (one pass over one text, hits in order).</summary>
    private DetectorMemo Memo(Detector detector)
    {
        if (!detector.UsesMemo)
        {
            return _noMemo;
        }

        _memos ??= new DetectorMemo[BuiltinCatalog.All.Count];
        var memo = _memos[detector.Index] ??= new DetectorMemo();
        if (memo.Pass != _anchorPass)
        {
            memo.Pass = _anchorPass;
            memo.Valid = false;
        }

        return memo;
    }

    private bool IsActive(Detector detector)
    {
        if (detector is KnownSecretDetector)
        {
            return !_vaultExempt;
        }

        return _exempt is null || !_exempt[detector.Index];
    }

    private static bool IsNameExempt(ScannerCore core, string host, string name)
    {
        foreach (var exemption in core.Options.Exemptions)
        {
            foreach (var id in exemption.DetectorIds)
            {
                if (id == name && exemption.AppliesToHost(host))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private bool AlreadyFound(string detector)
    {
        if (_findings is null)
        {
            return false;
        }

        foreach (var finding in _findings)
        {
            if (finding.Detector == detector)
            {
                return true;
            }
        }

        return false;
    }

    private void AddFinding(string detector, ContentAction action)
    {
        _findings ??= [];
        foreach (var finding in _findings)
        {
            if (finding.Detector == detector && finding.Action == action)
            {
                return;
            }
        }

        _findings.Add(new Finding(detector, _location, action));
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

    private void RunUrlPassword(ReadOnlySpan<char> text, LayerMap? map)
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

    private void RunEscapes(ReadOnlySpan<char> text, int depth, LayerMap? map)
    {
        if (depth >= _maxDepth)
        {
            return;
        }

        var i = text.IndexOfAny('\\', '%');
        var windowStart = -1;
        var windowEnd = -1;
        var walk = default(WindowWalk);
        while (i >= 0 && Error is null)
        {
            var interesting = TextUnescaper.IsInterestingEscape(text, i, out var length);
            if (interesting)
            {
                Tick(length);
                var (start, end) = walk.Widen(text, i, length, windowStart >= 0 ? windowEnd : 0);

                if (windowStart >= 0 && start <= windowEnd)
                {
                    windowEnd = Math.Max(windowEnd, end);
                }
                else
                {
                    if (windowStart >= 0)
                    {
                        DecodeWindow(text, windowStart, windowEnd, depth + 1, map, json: true, plusAsSpace: false);
                    }

                    windowStart = start;
                    windowEnd = end;
                }
            }

            var next = i + length;
            if (next >= text.Length)
            {
                break;
            }

            var found = text[next..].IndexOfAny('\\', '%');
            i = found < 0 ? -1 : next + found;
        }

        if (windowStart >= 0)
        {
            DecodeWindow(text, windowStart, windowEnd, depth + 1, map, json: true, plusAsSpace: false);
        }
    }

    private void DecodeWindow(ReadOnlySpan<char> text, int start, int end, int depth, LayerMap? map, bool json, bool plusAsSpace)
    {
        if (Error is not null || depth > _maxDepth)
        {
            return;
        }

        DecodeSource(text[start..end], start, depth, map, json, plusAsSpace);
    }

    /// <summary>Unescapes <paramref name="source"/>, which starts at <paramref name="start"/> of its layer, and scans the result.</summary>
    private void DecodeSource(ReadOnlySpan<char> source, int start, int depth, LayerMap? map, bool json, bool plusAsSpace)
    {
        if (Error is not null || depth > _maxDepth)
        {
            return;
        }

        Tick(source.Length);
        var chars = ArrayPool<char>.Shared.Rent(source.Length);
        var offsets = ArrayPool<int>.Shared.Rent(source.Length + 1);
        try
        {
            var count = TextUnescaper.Unescape(source, chars, offsets, json, plusAsSpace);
            if (!Charge(count))
            {
                return;
            }

            ScanLayer(chars.AsSpan(0, count), depth, LayerMap.Offsets(map, offsets, start));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<int>.Shared.Return(offsets);
        }
    }

    private void RunBase64(ReadOnlySpan<char> text, int depth, LayerMap? map)
    {
        var position = 0;
        while (Error is null && Base64RunFinder.FindNext(text, position, out var runStart, out var runEnd))
        {
            Tick(runEnd - position);
            HandleRun(text, runStart, runEnd, depth, map);
            position = runEnd;
        }
    }

    private void HandleRun(ReadOnlySpan<char> text, int runStart, int runEnd, int depth, LayerMap? map)
    {
        var run = text[runStart..runEnd];

        // Base64 of text or of compressed data practically always mixes upper and lower case; identifiers,
        // hex digests and UUIDs usually do not.
        if (run.IndexOfAnyInRange('A', 'Z') < 0 || run.IndexOfAnyInRange('a', 'z') < 0)
        {
            return;
        }

        Span<byte> sample = stackalloc byte[(SampleChars * 3 / 4) + 3];
        for (var align = 0; align < 4; align++)
        {
            var candidate = run[align..];
            if (candidate.Length < Base64RunFinder.MinRun)
            {
                return;
            }

            var sampleLength = Base64.Decode(candidate[..Math.Min(candidate.Length, SampleChars)], sample);
            var head = sample[..sampleLength];
            var compressed = Decompressor.IsGzip(head) ? "gzip" : Decompressor.IsZlib(head) ? "deflate" : null;
            if (compressed is null && !Base64.LooksLikeText(head))
            {
                continue;
            }

            if (depth >= _maxDepth)
            {
                Fail(DepthError, ScanErrorKind.DepthLimit);
                return;
            }

            var buffer = ArrayPool<byte>.Shared.Rent(Base64.MaxDecodedLength(candidate.Length));
            try
            {
                var count = Base64.Decode(candidate, buffer);
                if (!Charge(count))
                {
                    return;
                }

                var childMap = LayerMap.Whole(map, runStart, runEnd);
                if (compressed is null)
                {
                    ScanDocument(buffer.AsSpan(0, count), null, depth + 1, childMap);
                    return;
                }

                var status = Decompressor.Decompress(buffer, 0, count, compressed, DecompressLimit(count), out var inflated);
                using (inflated)
                {
                    if (status == DecompressStatus.LimitExceeded)
                    {
                        Fail(LimitError, ScanErrorKind.DecodeLimit);
                        return;
                    }

                    if (status == DecompressStatus.Ok && Charge(inflated.Length))
                    {
                        ScanDocument(inflated.Span, null, depth + 1, childMap);
                        return;
                    }
                }

                if (Error is not null)
                {
                    return;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary><see cref="HandleRun"/> for a run of bytes; small runs are decoded on the stack.</summary>
    private void HandleRunBytes(ReadOnlySpan<byte> run, int runStart, int runEnd, int depth, LayerMap? map)
    {
        if (run.IndexOfAnyInRange((byte)'A', (byte)'Z') < 0 || run.IndexOfAnyInRange((byte)'a', (byte)'z') < 0)
        {
            return;
        }

        Span<byte> sample = stackalloc byte[(SampleChars * 3 / 4) + 3];
        Span<byte> small = stackalloc byte[SmallRun];
        for (var align = 0; align < 4; align++)
        {
            var candidate = run[align..];
            if (candidate.Length < Base64RunFinder.MinRun)
            {
                return;
            }

            var sampleLength = Base64.Decode(candidate[..Math.Min(candidate.Length, SampleChars)], sample);
            var head = sample[..sampleLength];
            var compressed = Decompressor.IsGzip(head) ? "gzip" : Decompressor.IsZlib(head) ? "deflate" : null;
            if (compressed is null && !Base64.LooksLikeText(head))
            {
                continue;
            }

            if (depth >= _maxDepth)
            {
                Fail(DepthError, ScanErrorKind.DepthLimit);
                return;
            }

            var maxLength = Base64.MaxDecodedLength(candidate.Length);
            byte[]? rented = null;
            var buffer = maxLength <= SmallRun ? small : (rented = ArrayPool<byte>.Shared.Rent(maxLength));
            try
            {
                var count = Base64.Decode(candidate, buffer);
                if (!Charge(count))
                {
                    return;
                }

                if (ScanDecodedRun(buffer[..count], compressed, depth, LayerMap.Whole(map, runStart, runEnd)))
                {
                    return;
                }
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
            }
        }
    }

    /// <summary>Scans a decoded base64 run (inflating it first when compressed); true when done with the run.</summary>
    private bool ScanDecodedRun(ReadOnlySpan<byte> decoded, string? compressed, int depth, LayerMap childMap)
    {
        if (compressed is null)
        {
            ScanDocument(decoded, null, depth + 1, childMap);
            return true;
        }

        var copy = ArrayPool<byte>.Shared.Rent(decoded.Length);
        try
        {
            decoded.CopyTo(copy);
            var status = Decompressor.Decompress(copy, 0, decoded.Length, compressed, DecompressLimit(decoded.Length), out var inflated);
            using (inflated)
            {
                if (status == DecompressStatus.LimitExceeded)
                {
                    Fail(LimitError, ScanErrorKind.DecodeLimit);
                    return true;
                }

                if (status == DecompressStatus.Ok && Charge(inflated.Length))
                {
                    ScanDocument(inflated.Span, null, depth + 1, childMap);
                    return true;
                }
            }

            return Error is not null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    private void ScanMultipart(ReadOnlySpan<byte> bytes, ReadOnlySpan<char> text, string boundary, int depth, LayerMap? map)
    {
        foreach (var part in Multipart.Parse(bytes, boundary))
        {
            Tick(part.BodyEnd - part.BodyStart + 64);
            if (Error is not null)
            {
                return;
            }

            var partBytes = bytes[part.BodyStart..part.BodyEnd];
            if (partBytes.IsEmpty)
            {
                continue;
            }

            var wholeMap = LayerMap.Whole(map, part.BodyStart, part.BodyEnd);
            switch (part.TransferEncoding)
            {
                case "base64":
                {
                    var buffer = ArrayPool<byte>.Shared.Rent(Base64.MaxDecodedLength(partBytes.Length));
                    try
                    {
                        var count = DecodeBase64Lines(text[part.BodyStart..part.BodyEnd], buffer);
                        if (Charge(count))
                        {
                            ScanPartContent(buffer, count, part, depth + 1, wholeMap);
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }

                    break;
                }

                case "quoted-printable":
                {
                    var buffer = ArrayPool<byte>.Shared.Rent(partBytes.Length);
                    try
                    {
                        var count = QuotedPrintable.Decode(partBytes, buffer);
                        if (Charge(count))
                        {
                            ScanPartContent(buffer, count, part, depth + 1, wholeMap);
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }

                    break;
                }

                default:
                    if (part.ContentEncoding is not null || MediaType.IsMultipart(part.ContentType) || MediaType.IsForm(part.ContentType))
                    {
                        var copy = ArrayPool<byte>.Shared.Rent(partBytes.Length);
                        try
                        {
                            partBytes.CopyTo(copy);
                            ScanPartContent(copy, partBytes.Length, part, depth + 1, part.ContentEncoding is null ? LayerMap.Shift(map, part.BodyStart) : wholeMap);
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(copy);
                        }
                    }

                    break;
            }
        }
    }

    private void ScanPartContent(byte[] buffer, int count, MultipartPart part, int depth, LayerMap map)
    {
        var coding = part.ContentEncoding?.Trim().ToLowerInvariant();
        if (coding is null or "" or "identity" || count == 0)
        {
            ScanDocument(buffer.AsSpan(0, count), part.ContentType, depth, map);
            return;
        }

        coding = coding == "x-gzip" ? "gzip" : coding;
        if (coding is not ("gzip" or "deflate" or "br"))
        {
            Fail("undecodable content-encoding: " + ContentScanner.SafeCodingName(coding), ScanErrorKind.Undecodable);
            return;
        }

        if (TryDecompress(buffer, 0, count, coding, out var inflated))
        {
            using (inflated)
            {
                ScanDocument(inflated.Span, part.ContentType, depth, map);
            }
        }
    }

    private static int DecodeBase64Lines(ReadOnlySpan<char> text, Span<byte> destination)
    {
        var written = 0;
        foreach (var range in text.Split('\n'))
        {
            var line = text[range].Trim();
            if (line.IsEmpty)
            {
                continue;
            }

            written += Base64.Decode(line, destination[written..]);
        }

        return written;
    }
}
