using System.Buffers;
using System.Runtime.InteropServices;
using ProxyGuard.Inspection.Decoding;
using ProxyGuard.Inspection.Detectors;
using ProxyGuard.Inspection.Scanning;

namespace ProxyGuard.Inspection;

/// <summary>
/// Scans what a sandbox sends for credentials: built-in detectors, vault secrets and policy rules, after undoing
/// content-codings and text encodings. Immutable and thread-safe; build one per policy snapshot.
/// </summary>
public sealed class ContentScanner
{
    private const int MaxCodings = 8;
    private const int MaxJoinedLabels = 16;
    private const int MaxHostLength = 1024;

    private static readonly SearchValues<char> _hex = SearchValues.Create("0123456789abcdefABCDEF");

    private readonly ScannerCore _core;

    public ContentScanner(ScannerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _core = new ScannerCore(options);
    }

    /// <summary>
    /// Starts one request's scan budget: pass the result to every scan of that request, so that all its fields share
    /// one budget (and the clock is read once, not once per field).
    /// </summary>
    public ScanDeadline StartDeadline() => new(_core.Deadline());

    /// <summary>Every built-in detector id with a description (including <c>vault-secret</c>).</summary>
    public static IReadOnlyList<DetectorInfo> Builtins => BuiltinCatalog.Infos;

    /// <summary>
    /// Scans one value: a header name or value, a host name (CONNECT target, Host, SNI: its DNS labels are also
    /// scanned joined together and hex-decoded), a path.
    /// </summary>
    /// <param name="cancellationToken">Ends the scan (result <see cref="ScanErrorKind.Canceled"/>) when the request is aborted.</param>
    public ScanResult ScanText(string value, ScanLocation location, string host, CancellationToken cancellationToken = default) =>
        ScanText(value, location, host, default, cancellationToken);

    /// <inheritdoc cref="ScanText(string, ScanLocation, string, CancellationToken)"/>
    /// <param name="deadline">The request's deadline (<see cref="StartDeadline"/>); unset: the budget starts now.</param>
    public ScanResult ScanText(string value, ScanLocation location, string host, ScanDeadline deadline, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(value))
        {
            return ScanResult.Clean;
        }

        using var session = new ScanSession(_core, host, location, deadline, cancellationToken);
        session.RunKnownValues(value);
        session.ScanLayer(value, 0, null);
        if (location == ScanLocation.Host && session.Error is null && value.Length <= MaxHostLength)
        {
            ScanHostLabels(session, value);
        }

        return session.ToResult(value, static (v, r) => (null, Redactor.Apply(v, r)));
    }

    /// <summary>Scans a raw query string: as sent, fully URL-decoded, and all values decoded and joined.</summary>
    /// <param name="cancellationToken">Ends the scan (result <see cref="ScanErrorKind.Canceled"/>) when the request is aborted.</param>
    public ScanResult ScanQuery(string rawQuery, string host, CancellationToken cancellationToken = default) =>
        ScanQuery(rawQuery, host, default, cancellationToken);

    /// <inheritdoc cref="ScanQuery(string, string, CancellationToken)"/>
    /// <param name="deadline">The request's deadline (<see cref="StartDeadline"/>); unset: the budget starts now.</param>
    public ScanResult ScanQuery(string rawQuery, string host, ScanDeadline deadline, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(rawQuery))
        {
            return ScanResult.Clean;
        }

        using var session = new ScanSession(_core, host, ScanLocation.Query, deadline, cancellationToken);
        var raw = rawQuery.AsSpan();
        session.RunKnownValues(raw);
        session.ScanLayer(raw, 0, null);
        if (session.Error is null)
        {
            session.ScanUnescaped(raw, 1, null, json: false, plusAsSpace: true);
        }

        if (session.Error is null)
        {
            ScanJoinedValues(session, raw);
        }

        return session.ToResult(rawQuery, static (q, r) => (null, Redactor.Apply(q, r)));
    }

    /// <summary>
    /// Scans a request body. <paramref name="contentEncoding"/> (e.g. <c>gzip, br</c>) is undone first; an unknown or
    /// corrupt coding, or output past the limits, yields <see cref="ScanResult.Error"/>.
    /// </summary>
    /// <param name="cancellationToken">Ends the scan (result <see cref="ScanErrorKind.Canceled"/>) when the request is aborted.</param>
    public ScanResult ScanBody(ReadOnlyMemory<byte> body, string? contentEncoding, string? contentType, string host, CancellationToken cancellationToken = default) =>
        ScanBody(body, contentEncoding, contentType, host, default, cancellationToken);

    /// <inheritdoc cref="ScanBody(ReadOnlyMemory{byte}, string?, string?, string, CancellationToken)"/>
    /// <param name="deadline">The request's deadline (<see cref="StartDeadline"/>); unset: the budget starts now.</param>
    public ScanResult ScanBody(ReadOnlyMemory<byte> body, string? contentEncoding, string? contentType, string host, ScanDeadline deadline, CancellationToken cancellationToken)
    {
        if (body.IsEmpty)
        {
            return ScanResult.Clean;
        }

        var codings = ParseCodings(contentEncoding, out var codingError);
        if (codingError is not null)
        {
            return ScanResult.Failed(codingError, ScanErrorKind.Undecodable);
        }

        using var session = new ScanSession(_core, host, ScanLocation.Body, deadline, cancellationToken);
        PooledBytes decoded = default;
        try
        {
            ReadOnlyMemory<byte> identity = body;
            if (codings is not null)
            {
                byte[] array;
                int offset;
                int count;
                if (MemoryMarshal.TryGetArray(body, out var segment) && segment.Array is not null)
                {
                    (array, offset, count) = (segment.Array, segment.Offset, segment.Count);
                }
                else
                {
                    array = body.ToArray();
                    (offset, count) = (0, array.Length);
                }

                for (var i = codings.Count - 1; i >= 0; i--)
                {
                    if (!session.TryDecompress(array, offset, count, codings[i], out var next))
                    {
                        return session.ToResult();
                    }

                    decoded.Dispose();
                    decoded = next;
                    (array, offset, count) = (decoded.Array!, 0, decoded.Length);
                    if (count == 0)
                    {
                        break;
                    }
                }

                identity = new ReadOnlyMemory<byte>(array, offset, count);
            }

            session.ScanDocument(identity.Span, contentType, 0, null);
            return session.ToResult(identity, static (body, r) => (Redactor.Apply(body.Span, r), null));
        }
        finally
        {
            decoded.Dispose();
        }
    }

    internal static string SafeCodingName(string coding)
    {
        if (coding.Length is > 0 and <= 24)
        {
            foreach (var c in coding)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '.')
                {
                    return "(unrecognised)";
                }
            }

            return coding;
        }

        return "(unrecognised)";
    }

    private static List<string>? ParseCodings(string? contentEncoding, out string? error)
    {
        error = null;
        if (string.IsNullOrWhiteSpace(contentEncoding))
        {
            return null;
        }

        List<string>? codings = null;
        foreach (var range in contentEncoding.AsSpan().Split(','))
        {
            var token = contentEncoding.AsSpan(range).Trim();
            if (token.IsEmpty || token.Equals("identity", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            string coding;
            if (token.Equals("gzip", StringComparison.OrdinalIgnoreCase) || token.Equals("x-gzip", StringComparison.OrdinalIgnoreCase))
            {
                coding = "gzip";
            }
            else if (token.Equals("deflate", StringComparison.OrdinalIgnoreCase))
            {
                coding = "deflate";
            }
            else if (token.Equals("br", StringComparison.OrdinalIgnoreCase))
            {
                coding = "br";
            }
            else
            {
                error = "undecodable content-encoding: " + SafeCodingName(token.ToString().ToLowerInvariant());
                return null;
            }

            codings ??= [];
            codings.Add(coding);
            if (codings.Count > MaxCodings)
            {
                error = "undecodable content-encoding: too many codings";
                return null;
            }
        }

        return codings;
    }

    private static void ScanHostLabels(ScanSession session, string host)
    {
        // Consecutive labels joined without dots: a credential split across labels (AKIA….XXXX.evil.example).
        var starts = new List<int> { 0 };
        for (var i = 0; i < host.Length; i++)
        {
            if (host[i] == '.')
            {
                starts.Add(i + 1);
            }
        }

        var labels = Math.Min(starts.Count, MaxJoinedLabels);
        var chars = ArrayPool<char>.Shared.Rent(host.Length);
        var offsets = ArrayPool<int>.Shared.Rent(host.Length + 1);
        try
        {
            for (var first = 0; first < labels && session.Error is null; first++)
            {
                var n = 0;
                for (var last = first; last < labels && session.Error is null; last++)
                {
                    var labelEnd = last + 1 < starts.Count ? starts[last + 1] - 1 : host.Length;
                    for (var i = starts[last]; i < labelEnd; i++)
                    {
                        offsets[n] = i;
                        chars[n++] = host[i];
                    }

                    offsets[n] = labelEnd;
                    if (last > first)
                    {
                        session.ScanMapped(chars.AsSpan(0, n), offsets, 1);
                    }

                    ScanHexRuns(session, chars.AsSpan(0, n));
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<int>.Shared.Return(offsets);
        }
    }

    /// <summary>Hex is the usual DNS exfiltration encoding (labels are case-insensitive, base64 does not survive).</summary>
    private static void ScanHexRuns(ScanSession session, ReadOnlySpan<char> text)
    {
        var i = 0;
        while (i < text.Length)
        {
            var start = text[i..].IndexOfAny(_hex);
            if (start < 0)
            {
                return;
            }

            start += i;
            var end = text[start..].IndexOfAnyExcept(_hex);
            end = end < 0 ? text.Length : start + end;
            var length = (end - start) & ~1;
            if (length >= 16)
            {
                var bytes = new byte[length / 2];
                for (var k = 0; k < bytes.Length; k++)
                {
                    bytes[k] = (byte)((TextUnescaper.HexValue(text[start + (2 * k)]) << 4) | TextUnescaper.HexValue(text[start + (2 * k) + 1]));
                }

                if (Base64.LooksLikeText(bytes))
                {
                    session.ScanDocument(bytes, null, 1, null);
                }
            }

            i = end;
        }
    }

    private static void ScanJoinedValues(ScanSession session, ReadOnlySpan<char> raw)
    {
        var chars = ArrayPool<char>.Shared.Rent(raw.Length);
        var offsets = ArrayPool<int>.Shared.Rent(raw.Length + 1);
        var ends = ArrayPool<int>.Shared.Rent(raw.Length + 1);
        try
        {
            var n = 0;
            var pairs = 0;
            var position = 0;
            var query = raw;
            if (!query.IsEmpty && query[0] == '?')
            {
                position = 1;
            }

            while (position <= query.Length)
            {
                var rest = query[position..];
                var amp = rest.IndexOfAny('&', ';');
                var pair = amp < 0 ? rest : rest[..amp];
                var eq = pair.IndexOf('=');
                var valueStart = position + (eq < 0 ? 0 : eq + 1);
                var value = query[valueStart..(position + pair.Length)];
                if (!value.IsEmpty)
                {
                    var count = TextUnescaper.Unescape(value, chars.AsSpan(n), offsets.AsSpan(n), json: false, plusAsSpace: true);
                    for (var k = n; k <= n + count; k++)
                    {
                        offsets[k] += valueStart;
                    }

                    for (var k = n; k < n + count; k++)
                    {
                        ends[k] = offsets[k + 1];
                    }

                    n += count;
                    pairs++;
                }

                if (amp < 0)
                {
                    break;
                }

                position += amp + 1;
            }

            if (pairs < 2)
            {
                return;
            }

            session.ScanMapped(chars.AsSpan(0, n), offsets, 1, ends);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<int>.Shared.Return(offsets);
            ArrayPool<int>.Shared.Return(ends);
        }
    }
}
