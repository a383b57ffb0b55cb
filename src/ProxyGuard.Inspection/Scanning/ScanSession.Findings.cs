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
