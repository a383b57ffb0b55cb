using System.Text.RegularExpressions;

namespace ProxyGuard.Inspection.Detectors;

/// <summary>Google service-account JSON: <c>"type": "service_account"</c> with a <c>private_key</c> field nearby.</summary>
internal sealed partial class ServiceAccountDetector : Detector
{
    private const int Near = 8192;
    private const string PrivateKey = "private_key";

    public ServiceAccountDetector()
        : base(
            "google-service-account",
            "Google Cloud service-account key JSON: \"type\": \"service_account\" together with a \"private_key\" field.",
            ["service_account"],
            [])
    {
    }

    public override bool UsesMemo => true;

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length) =>
        TryMatch(text, hit, anchorLength, ignoreCase, new DetectorMemo(), out start, out length);

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, DetectorMemo memo, out int start, out int length)
    {
        start = 0;
        length = 0;
        var windowStart = Math.Max(0, hit - 64);
        var windowEnd = hit + anchorLength;
        if (!TypeField().IsMatch(text[windowStart..windowEnd]))
        {
            return false;
        }

        var nearStart = Math.Max(0, hit - Near);
        var nearEnd = Math.Min(text.Length, hit + Near);

        // memo.From: where the last search started; memo.A: the first "private_key" at or after it (int.MaxValue:
        // none). Hits come in increasing order, so a search is repeated only once the occurrence falls behind the
        // window, and the searched ranges do not overlap: O(n) for all hits of a text.
        if (!memo.Valid || nearStart < memo.From || memo.A < nearStart)
        {
            var found = text[nearStart..].IndexOf(PrivateKey, StringComparison.Ordinal);
            memo.Valid = true;
            memo.From = nearStart;
            memo.A = found < 0 ? int.MaxValue : nearStart + found;
        }

        if (memo.A == int.MaxValue || memo.A + PrivateKey.Length > nearEnd)
        {
            return false;
        }

        start = hit;
        length = anchorLength;
        return true;
    }

    [GeneratedRegex("""\\?"type\\?"\s*:\s*\\?"service_account$""", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex TypeField();
}
