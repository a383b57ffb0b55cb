using System.Text;
using ProxyGuard.Inspection.Decoding;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>Findings of a scan: which detectors are active toward the host, detector memos, recording findings.</summary>
internal sealed partial class ScanSession
{
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


    /// <summary>
    /// <c>vault-secret</c> through the shared real-value matcher: every form of a known value the secret gate and the
    /// scrubbers find (escapes, HTML references, quoted-printable, wrapped base64, two levels...) is a finding here too.
    /// Runs on the input (the matcher itself sees through escapes, quoted-printable and base64, so the layers the scanner
    /// decodes from those are covered) and on every decompressed payload inside it (which the matcher cannot open);
    /// skipped when no secret is known, when the detector is exempt toward the host, or once it has found something.
    /// </summary>
    public void RunKnownValues(ReadOnlySpan<byte> bytes)
    {
        if (_core.ValueMatcher is not { } matcher || _vaultExempt || bytes.IsEmpty || Error is not null || AlreadyFound(KnownSecretDetector.DetectorId))
        {
            return;
        }

        // The matcher makes a bounded number of passes over the input (its views and the base64 pass).
        Tick(bytes.Length * 4L);
        if (matcher.TryFindFirst(bytes, out _))
        {
            AddFinding(KnownSecretDetector.DetectorId, ContentAction.Deny);
        }
    }

    /// <summary>
    /// <see cref="RunKnownValues(ReadOnlySpan{byte})"/> for text (a header, a query, a host): read as Latin-1 like bodies
    /// when every character fits in a byte, else as UTF-8.
    /// </summary>
    public void RunKnownValues(ReadOnlySpan<char> text)
    {
        if (_core.ValueMatcher is null || _vaultExempt || text.IsEmpty || AlreadyFound(KnownSecretDetector.DetectorId))
        {
            return;
        }

        var latin1 = !text.ContainsAnyExceptInRange((char)0, (char)0xFF);
        var length = latin1 ? text.Length : Encoding.UTF8.GetByteCount(text);
        var buffer = ScratchArrays<byte>.Rent(Math.Max(length, 1));
        try
        {
            var written = latin1 ? Encoding.Latin1.GetBytes(text, buffer) : Encoding.UTF8.GetBytes(text, buffer);
            RunKnownValues(buffer.AsSpan(0, written));
        }
        finally
        {
            ScratchArrays<byte>.Return(buffer);
        }
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
}
