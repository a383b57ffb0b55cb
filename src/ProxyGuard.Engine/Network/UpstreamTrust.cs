using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace ProxyGuard.Engine.Network;

/// <summary>
/// Upstream certificate validation: the system roots always, plus the policy's
/// <c>tls.upstream_ca_files</c>. A name mismatch is never accepted.
/// </summary>
internal sealed class UpstreamTrust
{
    private readonly Func<X509Certificate2Collection> _extraRoots;

    public UpstreamTrust(Func<X509Certificate2Collection> extraRoots)
    {
        _extraRoots = extraRoots;
    }

    public bool Validate(object _, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is null)
        {
            return false;
        }

        var roots = _extraRoots();
        if (roots.Count == 0)
        {
            return false;
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(roots);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom.Build(leaf);
    }
}
