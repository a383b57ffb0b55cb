using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>A throwaway CA for test origins (never the ProxyGuard CA) and leaf certificates it signs.</summary>
public sealed class TestPki : IDisposable
{
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestPki(string name = "Test Origin CA")
    {
        var request = new CertificateRequest($"CN={name}", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(2));
    }

    public X509Certificate2 Ca { get; }

    public string CaPem => Ca.ExportCertificatePem() + "\n";

    public string WriteCaPem(string directory)
    {
        var path = Path.Combine(directory, "origin-ca.pem");
        File.WriteAllText(path, CaPem);
        return path;
    }

    /// <summary>A server certificate for the given DNS names and IPs, valid or expired.</summary>
    public X509Certificate2 Issue(IEnumerable<string> names, bool expired = false)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var list = names.ToList();
        var request = new CertificateRequest($"CN={list[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in list)
        {
            if (IPAddress.TryParse(name, out var ip))
            {
                san.AddIpAddress(ip);
            }
            else
            {
                san.AddDnsName(name);
            }
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var now = DateTimeOffset.UtcNow;
        var (from, to) = expired ? (now.AddDays(-10), now.AddDays(-1)) : (now.AddHours(-1), now.AddDays(1));
        using var cert = request.Create(Ca, from, to, RandomNumberGenerator.GetBytes(12));
        using var withKey = cert.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    public void Dispose()
    {
        Ca.Dispose();
        _caKey.Dispose();
    }
}
