using System.Text.RegularExpressions;

namespace ProxyGuard.Inspection.Detectors;

/// <summary>Google service-account JSON: <c>"type": "service_account"</c> with a <c>private_key</c> field nearby.</summary>
internal sealed partial class ServiceAccountDetector : Detector
{
    private const int Near = 8192;

    public ServiceAccountDetector()
        : base(
            "google-service-account",
            "Google Cloud service-account key JSON: \"type\": \"service_account\" together with a \"private_key\" field.",
            ["service_account"],
            [])
    {
    }

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length)
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
        var near = text[nearStart..nearEnd];
        if (near.IndexOf("private_key", StringComparison.Ordinal) < 0)
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
