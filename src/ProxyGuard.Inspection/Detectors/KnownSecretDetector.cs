namespace ProxyGuard.Inspection.Detectors;

/// <summary>
/// <c>vault-secret</c>: a real secret value known to the vault. The scanner compiles each value into literal anchors
/// (raw, and the stable cores of its base64/base64url encodings at the three byte alignments); URL-encoded and
/// JSON-escaped forms are found through the decoders. A base64 hit is widened to the whole base64 run.
/// </summary>
internal sealed class KnownSecretDetector : Detector
{
    public const string DetectorId = "vault-secret";

    private readonly bool _encoded;

    public KnownSecretDetector(bool encoded, string[] anchors)
        : base(DetectorId, "A real secret value known to the vault (raw, base64, base64url, URL-encoded, anywhere).", anchors, [])
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
