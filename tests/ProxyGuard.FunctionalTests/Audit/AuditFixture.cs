using System.Net;
using System.Net.Sockets;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// An origin and a proxy whose policy has an allow rule, a deny path rule, a rule toward a closed
/// port (upstream errors), two custom content rules (log and deny) and one bound secret, so every
/// kind of event and metric can be produced on purpose.
/// </summary>
public class AuditFixture : OriginFixture
{
    public const string Placeholder = "PG_SECRET_DEMO_0a1b2c3d4e5f";

    /// <summary>Synthetic: not a credential anywhere.</summary>
    public const string SecretValue = "synthetic-demo-value-8c1f0e";

    public AuditFixture()
    {
        // A port nothing listens on: bind, read, release.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        DeadPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
    }

    public int DeadPort { get; }

    protected override string Rules => $$"""
        rules:
          - name: blocked-path
            hosts: [localhost, 127.0.0.1, origin.test]
            ports: [{HTTPS}, {HTTP}]
            paths: ["/echo/blocked/**"]
            action: deny
          - name: origin
            hosts: [localhost, 127.0.0.1, origin.test]
            ports: [{HTTPS}, {HTTP}]
            action: allow
          - name: dead-port
            hosts: [127.0.0.1]
            ports: [{{DeadPort}}]
            action: allow
        """;

    protected override string Content => $$"""
        content:
          builtin: none
          scan: [headers, query, body]
          rules:
            - name: pg-log-marker
              pattern: 'pglog_[a-z0-9]{8}'
              action: log
            - name: pg-deny-marker
              pattern: 'pgdeny_[a-z0-9]{8}'
              action: deny
        secrets:
          - name: demo-token
            value: env:PG_AUDIT_DEMO_SECRET
            placeholder: {{Placeholder}}
            hosts: [localhost]
            in: [headers]

        """;

    protected override IDictionary<string, string>? ProxyEnvironment => Environment;

    public static Dictionary<string, string> Environment => new() { ["PG_AUDIT_DEMO_SECRET"] = SecretValue };

    public string Policy => PolicyYaml(Pki.WriteCaPem(Dir.Path));

    /// <summary>A fresh proxy with this fixture's policy in its own directory (fresh counters and store).</summary>
    public Task<ProxyProcess> StartProxyAsync(string name) =>
        ProxyProcess.StartAsync(System.IO.Path.Combine(Dir.Path, name), Policy, ["--resolve", "origin.test=127.0.0.1"], Environment);

    /// <summary>Starts a proxy again on the directory (and so the data dir) of an earlier one.</summary>
    public static Task<ProxyProcess> RestartAsync(ProxyProcess earlier) =>
        ProxyProcess.StartWithPolicyFileAsync(earlier.Directory, earlier.PolicyPath, ["--resolve", "origin.test=127.0.0.1"], Environment);
}
