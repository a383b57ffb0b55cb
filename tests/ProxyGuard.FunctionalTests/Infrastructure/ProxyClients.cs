using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>.NET HttpClient configured like a sandboxed client: the proxy, and only the ProxyGuard CA as root.</summary>
public static class ProxyClients
{
    public static HttpClient Create(string proxyUrl, string caPath, Version? version = null, ICredentials? proxyCredentials = null)
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(caPath);
        var handler = new SocketsHttpHandler
        {
            Proxy = new WebProxy(proxyUrl) { Credentials = proxyCredentials },
            UseProxy = true,
            AllowAutoRedirect = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                {
                    if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                    {
                        return false;
                    }

                    using var custom = new X509Chain();
                    custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    custom.ChainPolicy.CustomTrustStore.Add(ca);
                    custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    return custom.Build(leaf);
                },
            },
        };
        var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        if (version is not null)
        {
            client.DefaultRequestVersion = version;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        return client;
    }
}
