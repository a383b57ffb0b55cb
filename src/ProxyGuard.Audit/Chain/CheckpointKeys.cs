using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace ProxyGuard.Audit.Chain;

/// <summary>
/// The public keys an auditor trusts for checkpoints: one or more PEM <c>PUBLIC KEY</c> blocks (several during a key
/// rotation: the old and the new key). A checkpoint verifies when the key it names is among them and its signature holds.
/// </summary>
public sealed class CheckpointKeys
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Dictionary<string, PublicKey> _keys;

    private CheckpointKeys(Dictionary<string, PublicKey> keys)
    {
        _keys = keys;
    }

    public int Count => _keys.Count;

    /// <summary>Reads every PEM public key in <paramref name="path"/>.</summary>
    /// <exception cref="ArgumentException">The file cannot be read or holds no Ed25519 public key.</exception>
    public static CheckpointKeys Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"--public-key: cannot read {path}: {ex.Message.ReplaceLineEndings(" ")}", ex);
        }

        return Parse(text, path);
    }

    public static CheckpointKeys Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Begin = "-----BEGIN PUBLIC KEY-----";
        const string End = "-----END PUBLIC KEY-----";
        var keys = new Dictionary<string, PublicKey>(StringComparer.Ordinal);
        var at = 0;
        while ((at = text.IndexOf(Begin, at, StringComparison.Ordinal)) >= 0)
        {
            var end = text.IndexOf(End, at, StringComparison.Ordinal);
            if (end < 0)
            {
                throw new ArgumentException($"--public-key: {source}: a PUBLIC KEY block has no end line");
            }

            var block = text[at..(end + End.Length)] + "\n";
            if (!PublicKey.TryImport(Algorithm, Encoding.ASCII.GetBytes(block), KeyBlobFormat.PkixPublicKeyText, out var key))
            {
                throw new ArgumentException($"--public-key: {source}: a PUBLIC KEY block is not an Ed25519 public key");
            }

            keys[Convert.ToHexStringLower(IdOf(key!))] = key!;
            at = end + End.Length;
        }

        if (keys.Count == 0)
        {
            throw new ArgumentException($"--public-key: {source} holds no PEM PUBLIC KEY block (export one with 'proxyguard events checkpoint-key')");
        }

        return new CheckpointKeys(keys);
    }

    /// <summary>Null when the checkpoint's signature holds under a trusted key, else why not.</summary>
    public string? Check(Checkpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (!_keys.TryGetValue(Convert.ToHexStringLower(checkpoint.KeyId), out var key))
        {
            return $"checkpoint {checkpoint.Number} is signed by key {Convert.ToHexStringLower(checkpoint.KeyId)}, which is not among the given public keys";
        }

        return Algorithm.Verify(key, checkpoint.Message(), checkpoint.Signature)
            ? null
            : $"checkpoint {checkpoint.Number} (event {checkpoint.EventId}) does not match its signature: it was forged or changed";
    }

    internal static byte[] IdOf(PublicKey key) => SHA256.HashData(key.Export(KeyBlobFormat.RawPublicKey))[..8];
}
