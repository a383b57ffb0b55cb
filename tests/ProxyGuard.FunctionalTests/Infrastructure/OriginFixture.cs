namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>A test PKI, an origin on loopback and a proxy whose policy allows that origin.</summary>
public class OriginFixture : IAsyncLifetime
{
    public TempDir Dir { get; } = new();

    public TestPki Pki { get; } = new();

    public TestOrigin Origin { get; private set; } = null!;

    public ProxyProcess Proxy { get; private set; } = null!;

    public Dictionary<string, string> Env { get; private set; } = null!;

    /// <summary>The rules part of the policy; {HTTPS} and {HTTP} are replaced by the origin's ports.</summary>
    protected virtual string Rules => """
        rules:
          - name: origin
            hosts: [localhost, 127.0.0.1, origin.test]
            ports: [{HTTPS}, {HTTP}]
            action: allow
            websocket: true
        """;

    protected virtual string Content => "content:\n  builtin: none\n";

    protected virtual IDictionary<string, string>? ProxyEnvironment => null;

    public string PolicyYaml(string caPath) => $"""
        version: 1
        default: deny
        network:
          allow_destinations: [127.0.0.0/8]
        {Content}
        tls:
          upstream_ca_files: [{caPath}]
        {Rules.Replace("{HTTPS}", Origin.HttpsPort.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal).Replace("{HTTP}", Origin.HttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)}
        """;

    public virtual async Task InitializeAsync()
    {
        var cert = Pki.Issue(["localhost", "127.0.0.1", "origin.test"]);
        Origin = await TestOrigin.StartAsync(cert);
        var caPath = Pki.WriteCaPem(Dir.Path);
        Proxy = await ProxyProcess.StartAsync(Path.Combine(Dir.Path, "proxy"), PolicyYaml(caPath),
            ["--resolve", "origin.test=127.0.0.1"], ProxyEnvironment);
        Env = await Proxy.EnvAsync();
    }

    public virtual async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Origin.DisposeAsync();
        Pki.Dispose();
        Dir.Dispose();
    }

    public string HttpsUrl(string path, string host = "localhost") => $"https://{host}:{Origin.HttpsPort}{path}";

    public string HttpUrl(string path, string host = "localhost") => $"http://{host}:{Origin.HttpPort}{path}";
}
