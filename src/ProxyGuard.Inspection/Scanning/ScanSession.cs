using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;
using ProxyGuard.Inspection.Decoding;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// The state of one scan: findings, redactions, decode and time budget. Not thread-safe; one per call. Split by seam:
/// this file (state, budget, layer entry points), <c>ScanSession.Findings.cs</c>, <c>ScanSession.Matchers.cs</c> (literal anchors, URL
/// passwords, policy rules), <c>ScanSession.Escapes.cs</c> (percent and JSON escapes), <c>ScanSession.Base64.cs</c>
/// (base64 runs, wrapped blocks, compressed payloads) and <c>ScanSession.Multipart.cs</c>. Text is scanned as
/// <c>char</c> or as bytes (Latin-1: byte i is char i); the escape and base64 paths are one generic implementation
/// for both, specialised by the JIT.
/// </summary>
internal sealed partial class ScanSession : IDisposable
{
    public const string LimitError = "decompression limit exceeded";
    public const string DepthError = "decode depth limit exceeded";
    public const string CapacityError = "the proxy's decompression budget is spent";
    public const string InflationsError = "too many compressed payloads to decode";

    /// <summary>
    /// Decompressions (each creates and disposes an inflater, some microseconds even for a payload that turns out
    /// corrupt) one scan may start: this many, plus one per <see cref="BytesPerInflation"/> characters of the layers
    /// scanned so far (the input and what was decoded from it).
    /// A body with a zlib-looking base64 run every few bytes would otherwise pay for an inflater every few bytes
    /// (fuzz/regressions/scan-slow); past the allowance the scan stops with an error, which blocks.
    /// </summary>
    private const int BaseInflations = 64;
    private const int BytesPerInflation = 1024;

    /// <summary>Units of work (about one per character scanned or decoded) between two looks at the clock and the token.</summary>
    private const long CheckEvery = 16 * 1024;

    /// <summary>Work units charged for one detector confirmation (a regex over a window of up to ~600 characters).</summary>
    private const int ConfirmCost = 256;
    private const int MinOutputForRatio = 1024 * 1024;

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
    private Budgets.ResourceLease? _decodeLease;
    private bool _decodeLeaseTaken;
    private long _inflations;
    private long _layerChars;

    public ScanSession(ScannerCore core, string host, ScanLocation location, CancellationToken cancellation = default)
        : this(core, host, location, default, cancellation)
    {
    }

    public ScanSession(ScannerCore core, string host, ScanLocation location, ScanDeadline deadline, CancellationToken cancellation)
    {
        _core = core;
        _cancellation = cancellation;
        _deadline = deadline.IsSet ? deadline.Timestamp : core.Deadline();
        _location = location;
        _ignoreCase = location == ScanLocation.Host;
        _maxDepth = Math.Max(0, core.Options.MaxDepth);
        var profile = core.ProfileFor(host ?? string.Empty);
        _exempt = profile.Exempt;
        _vaultExempt = profile.VaultExempt;
        _ruleActive = profile.RuleActive;

        // Bodies are scanned as bytes unless a policy rule (a regex over chars) or case-insensitive matching applies.
        _bytePath = !_ignoreCase && !profile.AnyRuleActive;
    }

    public string? Error { get; private set; }

    public ScanErrorKind ErrorKind { get; private set; }

    public List<Redaction>? Redactions => _redactions;

    /// <summary>The result without a rewrite of the scanned input.</summary>
    public ScanResult ToResult() => ToResult<object?>(null, null);

    /// <summary>The result; when a finding asks for redaction, <paramref name="rewrite"/> builds the rewritten input from <paramref name="state"/>.</summary>
    public ScanResult ToResult<TState>(TState state, Func<TState, List<Redaction>, (byte[]? Body, string? Text)>? rewrite)
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
            (body, text) = rewrite(state, _redactions);
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

    /// <summary>Gives back what this scan's decompression output held of the process-wide budget.</summary>
    public void Dispose() => _decodeLease?.Dispose();

    /// <summary>
    /// This scan's lease on the process-wide decompression budget (null without one). Taken on the first decompression;
    /// it holds every decompression output of the scan until the scan ends.
    /// </summary>
    private Budgets.ResourceLease? DecodeLease()
    {
        if (!_decodeLeaseTaken)
        {
            _decodeLeaseTaken = true;
            _decodeLease = _core.Options.DecodeBudget?.TryReserve(0);
        }

        return _decodeLease;
    }

    /// <summary>Runs one decompression step under the scan's limits and the process-wide budget.</summary>
    public DecompressStatus Decompress(byte[] array, int offset, int count, string coding, out PooledBytes output)
    {
        if (++_inflations > BaseInflations + (_layerChars / BytesPerInflation))
        {
            output = default;
            Fail(InflationsError, ScanErrorKind.DecodeLimit);
            return DecompressStatus.LimitExceeded;
        }

        var status = Decompressor.Decompress(array, offset, count, coding, DecompressLimit(count), out output, DecodeLease());
        if (status == DecompressStatus.BudgetExhausted)
        {
            Fail(CapacityError, ScanErrorKind.CapacityExceeded);
        }
        else if (status == DecompressStatus.LimitExceeded)
        {
            Fail(LimitError, ScanErrorKind.DecodeLimit);
        }

        return status;
    }

    public long DecompressLimit(int inputLength)
    {
        var ratioLimit = Math.Max((long)inputLength * Math.Max(1, _core.Options.MaxExpansionRatio), MinOutputForRatio);
        return Math.Max(0, Math.Min(ratioLimit, _core.Options.MaxDecodedBytes - _decoded));
    }

    /// <summary>
    /// Decompresses one content-coding step, charging the budget. Sets <see cref="Error"/> on failure. The input must
    /// be exactly one complete compressed stream (<see cref="CompressedExtent"/>): bytes after its end would reach the
    /// upstream without being scanned (R7-4), so they make the body undecodable; a gzip header's free-text fields are
    /// added after the output so that they are scanned too.
    /// </summary>
    public bool TryDecompress(byte[] array, int offset, int count, string coding, out PooledBytes output)
    {
        var status = Decompress(array, offset, count, coding, out output);
        switch (status)
        {
            case DecompressStatus.Ok:
                if (!Charge(output.Length))
                {
                    output.Dispose();
                    return false;
                }

                if (CompressedExtent.Check(array, offset, count, coding, out var headerText) is { } extentError)
                {
                    output.Dispose();
                    Fail("undecodable content-encoding: " + coding + ": " + extentError, ScanErrorKind.Undecodable);
                    return false;
                }

                if (!headerText.IsEmpty)
                {
                    if (!Charge(headerText.Length + 1))
                    {
                        output.Dispose();
                        return false;
                    }

                    var joined = ScratchArrays<byte>.Rent(output.Length + 1 + headerText.Length);
                    output.Span.CopyTo(joined);
                    joined[output.Length] = (byte)'\n';
                    headerText.Span.CopyTo(joined.AsSpan(output.Length + 1));
                    var length = output.Length + 1 + headerText.Length;
                    output.Dispose();
                    output = new PooledBytes(joined, length);
                }

                return true;
            case DecompressStatus.LimitExceeded or DecompressStatus.BudgetExhausted:
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

        if (depth == 0)
        {
            RunKnownValues(bytes);
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

            if (TryScanWide(bytes, contentType, depth, map))
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
                ScratchArrays<char>.Return(chars);
            }
        }
    }

    /// <summary>The Latin-1 text of <paramref name="bytes"/>, widened into <paramref name="chars"/> on first use.</summary>
    private static ReadOnlySpan<char> Widen(ReadOnlySpan<byte> bytes, ref char[]? chars)
    {
        if (chars is null)
        {
            chars = ScratchArrays<char>.Rent(bytes.Length);
            Encoding.Latin1.GetChars(bytes, chars);
        }

        return chars.AsSpan(0, bytes.Length);
    }

    /// <summary>Runs every matcher over one layer of text, then the decoders that may reveal more layers.</summary>
    public void ScanLayer(ReadOnlySpan<char> text, int depth, LayerMap? map)
    {
        Tick(text.Length);
        _layerChars += text.Length;
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
            RunUrlPassword(text);
        }

        if (_ruleActive is not null)
        {
            RunRules(text, map);
        }

        var lineFeeds = RunEscapes(text, depth, map);
        RunBase64(text, depth, map);
        if (lineFeeds)
        {
            RunWrappedBase64(text, depth, map);
        }
    }

    /// <summary>
    /// <see cref="ScanLayer"/> for a layer of bytes without active policy rules: the same matchers and decoders, run on
    /// the bytes. Detectors confirm a hit on the widened text (index for index), so their results are the same.
    /// </summary>
    private void ScanLayerBytes(ReadOnlySpan<byte> bytes, int depth, LayerMap? map, ref char[]? chars)
    {
        Tick(bytes.Length);
        _layerChars += bytes.Length;
        if (Error is not null)
        {
            return;
        }

        RunAnchorsBytes(bytes, ref chars);
        if (_core.UrlPasswordEnabled)
        {
            RunUrlPasswordBytes(bytes);
        }

        var lineFeeds = RunEscapes(bytes, depth, map);
        RunBase64(bytes, depth, map);
        if (lineFeeds)
        {
            RunWrappedBase64(bytes, depth, map);
        }
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
}
