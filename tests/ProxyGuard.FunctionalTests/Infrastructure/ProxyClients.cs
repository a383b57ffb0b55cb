using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>.NET HttpClient configured like a sandboxed client: the proxy, and only the ProxyGuard CA as root.</summary>
public static class ProxyClients
{
    public static HttpClient Create(string proxyUrl, string caPath, Version? version = null, ICredentials? proxyCredentials = null)
    {
        var handler = Handler(proxyUrl, caPath, proxyCredentials);
        handler.AllowAutoRedirect = false;
        var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        if (version is not null)
        {
            client.DefaultRequestVersion = version;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        return client;
    }

    /// <summary>A handler through the proxy that trusts only the ProxyGuard CA (and checks the name), for invokers and WebSockets.</summary>
    public static SocketsHttpHandler Handler(string proxyUrl, string caPath, ICredentials? proxyCredentials = null)
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(caPath);
        return new SocketsHttpHandler
        {
            Proxy = new WebProxy(proxyUrl) { Credentials = proxyCredentials },
            UseProxy = true,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
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
    }
}
