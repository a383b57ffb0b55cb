using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace ProxyGuard.Audit.Chain;

/// <summary>
/// The Ed25519 key a replica signs its checkpoints with: a PKCS#8 PEM file (mode 0600), created on first use. The
/// private key never leaves this object; <see cref="PublicKeyPem"/> is what an auditor verifies with.
/// </summary>
public sealed class CheckpointSigner : IDisposable
{
    public const string DefaultFileName = "checkpoint.key";

    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private CheckpointSigner(Key key, string replicaId)
    {
        _key = key;
        ReplicaId = replicaId;
        KeyId = CheckpointKeys.IdOf(key.PublicKey);
        PublicKeyPem = Encoding.ASCII.GetString(key.PublicKey.Export(KeyBlobFormat.PkixPublicKeyText));
    }

    public string ReplicaId { get; }

    /// <summary>The first 8 bytes of SHA-256 of the raw public key: names the key in stored checkpoints (rotation).</summary>
    public byte[] KeyId { get; }

    /// <summary>The public key as a PEM <c>PUBLIC KEY</c> block (SubjectPublicKeyInfo, as OpenSSL writes it).</summary>
    public string PublicKeyPem { get; }

    /// <summary>Loads the key at <paramref name="path"/>, creating it (0600) when <paramref name="create"/> and it does not exist.</summary>
    /// <exception cref="EventStoreException">The file cannot be read or created, is not an Ed25519 private key, or others may read it.</exception>
    public static CheckpointSigner Load(string path, string replicaId, bool create)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            if (!File.Exists(path))
            {
                if (!create)
                {
                    throw new EventStoreException($"no checkpoint key at {path}");
                }

                using var fresh = Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
                var blob = fresh.Export(KeyBlobFormat.PkixPrivateKeyText);
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                try
                {
                    using var stream = new FileStream(path, options);
                    stream.Write(blob);
                    stream.Flush(flushToDisk: true);
                }
                catch (IOException) when (File.Exists(path))
                {
                    // Created by someone else meanwhile: use theirs.
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(blob);
                }
            }

            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
            {
                throw new EventStoreException($"the checkpoint key {path} is readable or writable by others: make it mode 0600 (chmod 600)");
            }

            var text = File.ReadAllBytes(path);
            try
            {
                if (!Key.TryImport(Algorithm, text, KeyBlobFormat.PkixPrivateKeyText, out var key))
                {
                    throw new EventStoreException($"{path} is not an Ed25519 private key (PEM PRIVATE KEY)");
                }

                return new CheckpointSigner(key!, replicaId);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(text);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new EventStoreException($"cannot use the checkpoint key {path}: {ex.Message.ReplaceLineEndings(" ")}", ex);
        }
    }

    /// <summary>Signs checkpoint <paramref name="number"/> of this replica's chain.</summary>
    public Checkpoint Sign(long number, long eventId, byte[] eventHash, long timeMicros, byte[] previous)
    {
        var message = Checkpoint.Message(ReplicaId, number, eventId, eventHash, timeMicros, previous);
        return new Checkpoint(ReplicaId, number, eventId, eventHash, timeMicros, previous, KeyId, Algorithm.Sign(_key, message));
    }

    public void Dispose() => _key.Dispose();
}
