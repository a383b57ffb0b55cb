using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Certificates;

/// <summary>
/// The interception CA: an ECDSA P-256 key and a self-signed certificate stored as PEM files
/// (<c>ca.pem</c>, <c>ca-key.pem</c> with mode 0600). The key never leaves the proxy host.
/// </summary>
internal sealed class CertificateAuthority : IDisposable
{
    public const string CertificateFileName = "ca.pem";
    public const string KeyFileName = "ca-key.pem";

    /// <summary>The key every leaf certificate carries (mode 0600): stable across restarts, so its
    /// SPKI hash can be pinned (Chromium's <c>--ignore-certificate-errors-spki-list</c>).</summary>
    public const string LeafKeyFileName = "leaf-key.pem";

    private CertificateAuthority(X509Certificate2 certificate, ECDsa key, string directory)
    {
        Certificate = certificate;
        Key = key;
        Directory = directory;
        LeafKey = LoadOrCreateLeafKey(directory);
    }

    public X509Certificate2 Certificate { get; }

    internal ECDsa Key { get; }

    /// <summary>The ECDSA P-256 key of all leaf certificates.</summary>
    internal ECDsa LeafKey { get; }

    public string Directory { get; }

    public string CertificatePath => Path.Combine(Directory, CertificateFileName);

    public static string CertificatePathIn(string directory) => Path.Combine(directory, CertificateFileName);

    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, CertificateFileName)) && File.Exists(Path.Combine(directory, KeyFileName));

    /// <summary>Creates a new CA in <paramref name="directory"/>. Refuses to overwrite unless <paramref name="force"/>.</summary>
    public static CertificateAuthority Create(string directory, bool force, string commonName = "ProxyGuard Interception CA")
    {
        FilePermissions.CreatePrivateDirectory(directory);
        CheckPermissions(directory);
        var certPath = Path.Combine(directory, CertificateFileName);
        var keyPath = Path.Combine(directory, KeyFileName);
        if (!force && (File.Exists(certPath) || File.Exists(keyPath)))
        {
            throw new CertificateAuthorityException($"a CA already exists in {directory} (use --force to replace it)");
        }

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(
            new X500DistinguishedName($"CN={commonName}, O=ProxyGuard"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var selfSigned = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(5));
        var certificate = X509CertificateLoader.LoadCertificate(selfSigned.RawData);

        WritePrivateFile(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certPath, certificate.ExportCertificatePem() + "\n");
        return new CertificateAuthority(certificate, key, directory);
    }

    /// <summary>Loads the CA from <paramref name="directory"/>; throws <see cref="CertificateAuthorityException"/> with a one-line reason.</summary>
    public static CertificateAuthority Load(string directory)
    {
        var certPath = Path.Combine(directory, CertificateFileName);
        var keyPath = Path.Combine(directory, KeyFileName);
        CheckPermissions(directory);
        X509Certificate2? certificate = null;
        ECDsa? key = null;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(
                Convert.FromBase64String(ExtractPemBody(File.ReadAllText(certPath), "CERTIFICATE", certPath)));
            key = ECDsa.Create();
            key.ImportFromPem(File.ReadAllText(keyPath));
            using var publicKey = certificate.GetECDsaPublicKey()
                ?? throw new CertificateAuthorityException($"{certPath}: the CA certificate is not an ECDSA certificate");
            if (!publicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(key.ExportSubjectPublicKeyInfo()))
            {
                throw new CertificateAuthorityException($"{keyPath}: the key does not belong to {certPath}");
            }

            var ca = new CertificateAuthority(certificate, key, directory);
            (certificate, key) = (null, null); // owned by the CA now
            return ca;
        }
        catch (CertificateAuthorityException)
        {
            throw;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or FormatException or ArgumentException)
        {
            throw new CertificateAuthorityException($"cannot load the CA from {directory}: {ex.Message}");
        }
        finally
        {
            certificate?.Dispose();
            key?.Dispose();
        }
    }

    /// <summary>Loads the CA, creating it first when the directory holds none.</summary>
    public static CertificateAuthority LoadOrCreate(string directory, out bool created)
    {
        created = !Exists(directory);
        return created ? Create(directory, force: false) : Load(directory);
    }

    public string ExportCertificatePem() => Certificate.ExportCertificatePem() + "\n";

    /// <summary>SHA-256 of the leaf key's SubjectPublicKeyInfo, base64: what Chromium's
    /// <c>--ignore-certificate-errors-spki-list</c> takes (it matches certificates it is sent; the
    /// CA itself is not sent, the leaf always is).</summary>
    public string LeafSpkiSha256Base64() =>
        Convert.ToBase64String(SHA256.HashData(LeafKey.ExportSubjectPublicKeyInfo()));

    public void Dispose()
    {
        Certificate.Dispose();
        Key.Dispose();
        LeafKey.Dispose();
    }

    /// <summary>
    /// Refuses a CA directory, CA key or leaf key that group or others may write (a planted key would
    /// let them mint certificates the sandbox trusts); one line naming the file and the fixing <c>chmod</c>.
    /// </summary>
    private static void CheckPermissions(string directory)
    {
        var refusal = FilePermissions.CheckPrivateDirectory(directory, "CA directory")
            ?? FilePermissions.CheckPrivateFile(Path.Combine(directory, KeyFileName), "CA key")
            ?? FilePermissions.CheckPrivateFile(Path.Combine(directory, LeafKeyFileName), "leaf key");
        if (refusal is not null)
        {
            throw new CertificateAuthorityException(refusal);
        }
    }

    private static ECDsa LoadOrCreateLeafKey(string directory)
    {
        var path = Path.Combine(directory, LeafKeyFileName);
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        if (File.Exists(path))
        {
            key.ImportFromPem(File.ReadAllText(path));
            return key;
        }

        WritePrivateFile(path, key.ExportPkcs8PrivateKeyPem());
        return key;
    }

    private static string ExtractPemBody(string pem, string label, string path)
    {
        var fields = PemEncoding.Find(pem);
        if (!pem.AsSpan()[fields.Label].SequenceEqual(label))
        {
            throw new CertificateAuthorityException($"{path}: expected a PEM {label}");
        }

        return pem[fields.Base64Data];
    }

    internal static void WritePrivateFile(string path, string content)
    {
        var tmp = path + ".tmp";
        File.Delete(tmp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(tmp, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(content);
        }

        File.Move(tmp, path, overwrite: true);
    }
}
