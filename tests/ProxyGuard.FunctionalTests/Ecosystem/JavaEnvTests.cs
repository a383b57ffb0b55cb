using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// A Java program configured only by <c>proxyguard env</c> (JAVA_TOOL_OPTIONS: the PKCS12 truststore beside the CA,
/// the proxy, an empty http.nonProxyHosts) fetches an allowed HTTPS URL through the proxy. The origin is named
/// <c>origin.test</c>, which only the proxy resolves, so a request that bypassed the proxy could not succeed.
/// </summary>
[Collection("proxy")]
public sealed class JavaEnvTests : IClassFixture<OriginFixture>
{
    private const string Fetch = """
        import java.net.ProxySelector;
        import java.net.URI;
        import java.net.http.HttpClient;
        import java.net.http.HttpRequest;
        import java.net.http.HttpResponse;

        public class Fetch {
            public static void main(String[] args) throws Exception {
                var client = HttpClient.newBuilder().proxy(ProxySelector.getDefault()).build();
                var response = client.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
                System.out.println(response.statusCode() + " " + response.body());
            }
        }
        """;

    private readonly OriginFixture _f;

    public JavaEnvTests(OriginFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public void Env_writes_a_pkcs12_truststore_and_java_tool_options()
    {
        var options = _f.Env["JAVA_TOOL_OPTIONS"];
        var store = Path.Combine(_f.Proxy.CaDirectory, "truststore.p12");
        Assert.Contains($"-Djavax.net.ssl.trustStore={store} ", options, StringComparison.Ordinal);
        Assert.Contains("-Djavax.net.ssl.trustStoreType=PKCS12", options, StringComparison.Ordinal);
        var proxy = new Uri(_f.Proxy.ProxyUrl);
        Assert.Contains($"-Dhttps.proxyHost={proxy.Host} -Dhttps.proxyPort={proxy.Port}", options, StringComparison.Ordinal);
        Assert.Contains($"-Dhttp.proxyHost={proxy.Host} -Dhttp.proxyPort={proxy.Port}", options, StringComparison.Ordinal);
        Assert.EndsWith("-Dhttp.nonProxyHosts=", options, StringComparison.Ordinal);
        var certificates = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12CollectionFromFile(store, "changeit");
        var ca = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(_f.Proxy.CaPath);
        Assert.Contains(certificates, c => c.Thumbprint == ca.Thumbprint);
    }

    [RequiresToolsFact("java")]
    public async Task Java_httpclient_with_env_only()
    {
        var source = Path.Combine(_f.Dir.Path, "Fetch.java");
        await File.WriteAllTextAsync(source, Fetch);
        var url = _f.HttpsUrl("/echo/iso-java", "origin.test");
        var result = await Isolated.RunAsync("java", [source, url], _f.Dir.Path, _f.Env, timeout: TimeSpan.FromMinutes(4));
        Assert.True(result.ExitCode == 0, result.All);
        Assert.StartsWith("200 ", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(_f.Origin.Received, r => r.EndsWith(" /echo/iso-java", StringComparison.Ordinal));
    }
}
