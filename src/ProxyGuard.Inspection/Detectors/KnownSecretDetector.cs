namespace ProxyGuard.Inspection.Detectors;

/// <summary>
/// <c>vault-secret</c>: a real secret value known to the vault. Every form the shared real-value matcher finds (the
/// one the secret gate and the scrubbers use) is a finding: the scanner runs it over each document it scans
/// (<see cref="Scanning.ScannerCore.ValueMatcher"/>). This detector adds literal anchors (raw, and the stable cores of
/// the base64/base64url encodings at the three byte alignments) for the layers the scanner builds itself (escape
/// windows, joined query values and host labels). A base64 hit is widened to the whole base64 run.
/// </summary>
internal sealed class KnownSecretDetector : Detector
{
    public const string DetectorId = "vault-secret";

    public const string Summary = "A real secret value known to the vault, anywhere, in every form the secret gate finds (raw, "
        + "base64/base64url incl. wrapped, URL, JSON, HTML and quoted-printable escapes, two levels of escaping).";

    private readonly bool _encoded;

    public KnownSecretDetector(bool encoded, string[] anchors)
        : base(DetectorId, Summary, anchors, [])
    {
        _encoded = encoded;
    }

    public override bool TryMatch(ReadOnlySpan<char> text, int hit, int anchorLength, bool ignoreCase, out int start, out int length)
    {
        start = hit;
        var end = hit + anchorLength;
        if (_encoded)
        {
            while (start > 0 && Decoding.Base64.IsRunChar(text[start - 1]))
            {
                start--;
            }

            while (end < text.Length && (Decoding.Base64.IsRunChar(text[end]) || text[end] == '='))
            {
                end++;
            }
        }

        length = end - start;
        return true;
    }
}
