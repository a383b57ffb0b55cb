using System.Globalization;
using System.Net;
using ProxyGuard.FunctionalTests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// samples/kubernetes: every YAML document parses, the kinds a fleet needs are there, and what the manifests say about
/// the proxy (its flags, ports, probe paths, the policy file, the event store variable) matches the real executable.
/// </summary>
[Collection("proxy")]
public sealed class KubernetesSampleTests
{
    private static readonly string[] RequiredKinds =
        ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"];

    [Fact]
    public async Task The_manifests_parse_and_their_flags_ports_probes_and_policy_match_the_proxy()
    {
        var docs = Documents();
        foreach (var kind in RequiredKinds)
        {
            Assert.Contains(docs, d => Text(d, "kind") == kind);
        }

        var deployment = Single(docs, "Deployment", "proxyguard");
        Assert.Equal("3", Text(deployment, "spec", "replicas"));
        var template = Map(deployment, "spec", "template");
        var labels = Labels(Map(template, "metadata", "labels"));
        var container = Seq(template, "spec", "containers").Children.OfType<YamlMappingNode>().Single(c => Text(c, "name") == "proxyguard");
        var args = Seq(container, "args").Children.Select(a => ((YamlScalarNode)a).Value!).ToList();
        Assert.Equal("run", args[0]);

        // Every flag exists (the real CLI's help lists it).
        var help = await Cli.RunAsync(Path.GetTempPath(), "run", "--help");
        Assert.True(help.ExitCode == 0, help.All);
        foreach (var flag in args.Where(a => a.StartsWith("--", StringComparison.Ordinal)))
        {
            Assert.Contains(flag, help.Stdout, StringComparison.Ordinal);
        }

        // Named container ports are the ports the proxy listens on.
        var ports = Seq(container, "ports").Children.OfType<YamlMappingNode>()
            .ToDictionary(p => Text(p, "name")!, p => int.Parse(Text(p, "containerPort")!, CultureInfo.InvariantCulture));
        Assert.Equal(PortOf(Flag(args, "--listen")), ports["proxy"]);
        Assert.Equal(PortOf(Flag(args, "--admin")), ports["admin"]);

        // Probes: readiness and liveness are the separate endpoints, on the admin port.
        Assert.Equal("/readyz", Text(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/livez", Text(container, "livenessProbe", "httpGet", "path"));
        Assert.Equal(ports["admin"], ResolvePort(Text(container, "readinessProbe", "httpGet", "port")!, ports));
        Assert.Equal(ports["admin"], ResolvePort(Text(container, "livenessProbe", "httpGet", "port")!, ports));

        // The Service sends its port to the proxy listener.
        var service = Single(docs, "Service", "proxyguard");
        Assert.Subset(labels, Labels(Map(service, "spec", "selector")));
        var servicePort = (YamlMappingNode)Seq(service, "spec", "ports").Children.Single();
        Assert.Equal(ports["proxy"], ResolvePort(Text(servicePort, "targetPort")!, ports));

        // The event store's URL comes from a Secret defined here, under the variable the proxy reads.
        var env = Seq(container, "env").Children.OfType<YamlMappingNode>().ToDictionary(e => Text(e, "name")!);
        var storeRef = Map(env["PROXYGUARD_EVENTS_STORE"], "valueFrom", "secretKeyRef");
        var secret = Single(docs, "Secret", Text(storeRef, "name")!);
        Assert.StartsWith("postgres://", Text(secret, "stringData", Text(storeRef, "key")!), StringComparison.Ordinal);

        // The policy: the ConfigMap is mounted as the directory of --policy (no subPath: kubelet would not update
        // it), and its policy passes `proxyguard policy check`.
        var policyPath = Flag(args, "--policy");
        var mount = Seq(container, "volumeMounts").Children.OfType<YamlMappingNode>()
            .Single(m => Text(m, "mountPath") == Path.GetDirectoryName(policyPath));
        Assert.Null(Find(mount, "subPath"));
        var volume = Seq(template, "spec", "volumes").Children.OfType<YamlMappingNode>().Single(v => Text(v, "name") == Text(mount, "name"));
        var configMap = Single(docs, "ConfigMap", Text(volume, "configMap", "name")!);
        using var dir = new TempDir();
        var policyFile = Path.Combine(dir.Path, "policy.yaml");
        await File.WriteAllTextAsync(policyFile, Text(configMap, "data", Path.GetFileName(policyPath)));
        var check = await Cli.RunAsync(dir.Path, "policy", "check", policyFile);
        Assert.True(check.ExitCode == 0, check.All);

        // Availability: the budget and the autoscaler target these pods and never go below what the budget needs.
        var pdb = Single(docs, "PodDisruptionBudget", "proxyguard");
        Assert.Subset(labels, Labels(Map(pdb, "spec", "selector", "matchLabels")));
        Assert.True(int.Parse(Text(pdb, "spec", "minAvailable")!, CultureInfo.InvariantCulture) < 3);
        var hpa = Single(docs, "HorizontalPodAutoscaler", "proxyguard");
        Assert.Equal("Deployment", Text(hpa, "spec", "scaleTargetRef", "kind"));
        Assert.Equal("proxyguard", Text(hpa, "spec", "scaleTargetRef", "name"));
        Assert.Equal("3", Text(hpa, "spec", "minReplicas"));
        Assert.NotNull(Find(container, "resources", "requests", "cpu")); // the HPA's utilization needs a request

        // Network: sandboxes reach only the proxy port (and DNS); the proxy is reachable on its two ports, and reaches
        // PostgreSQL and public addresses.
        var agents = docs.Single(d => Text(d, "kind") == "NetworkPolicy" && Text(d, "metadata", "namespace") == "agents");
        var agentPorts = Seq(agents, "spec", "egress").Children.OfType<YamlMappingNode>()
            .SelectMany(r => Seq(r, "ports").Children.OfType<YamlMappingNode>()).Select(p => Text(p, "port")).ToHashSet();
        Assert.Equal(new HashSet<string?> { ports["proxy"].ToString(CultureInfo.InvariantCulture), "53" }, agentPorts);
        var ingress = Single(docs, "NetworkPolicy", "proxyguard-ingress");
        var ingressPorts = Seq(ingress, "spec", "ingress").Children.OfType<YamlMappingNode>()
            .SelectMany(r => Seq(r, "ports").Children.OfType<YamlMappingNode>()).Select(p => int.Parse(Text(p, "port")!, CultureInfo.InvariantCulture)).ToHashSet();
        Assert.Equal(new HashSet<int> { ports["proxy"], ports["admin"] }, ingressPorts);
        var egress = Single(docs, "NetworkPolicy", "proxyguard-egress");
        var egressRules = Seq(egress, "spec", "egress").Children.OfType<YamlMappingNode>().ToList();
        Assert.Contains(egressRules, r => Find(r, "ports") is YamlSequenceNode s && s.Children.OfType<YamlMappingNode>().Any(p => Text(p, "port") == "5432"));
        Assert.Contains(egressRules, r => Seq(r, "to").Children.OfType<YamlMappingNode>().Any(t => Text(t, "ipBlock", "cidr") == "0.0.0.0/0"));

        // The probe paths answer 200 on a real proxy's admin listener.
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), "version: 1\ndefault: deny\nrules: []\n");
        using var anonymous = new HttpClient { BaseAddress = new Uri(proxy.AdminUrl) };
        foreach (var probe in new[] { "readinessProbe", "livenessProbe" })
        {
            using var response = await anonymous.GetAsync(Text(container, probe, "httpGet", "path"));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{probe}: {response.StatusCode}");
        }
    }

    private static List<YamlMappingNode> Documents()
    {
        var docs = new List<YamlMappingNode>();
        foreach (var file in Directory.GetFiles(Repo.PathOf("samples/kubernetes"), "*.yaml").Order(StringComparer.Ordinal))
        {
            var stream = new YamlStream();
            using (var reader = new StringReader(File.ReadAllText(file)))
            {
                stream.Load(reader);
            }

            foreach (var doc in stream.Documents)
            {
                var root = Assert.IsType<YamlMappingNode>(doc.RootNode);
                Assert.NotNull(Text(root, "apiVersion"));
                Assert.NotNull(Text(root, "kind"));
                Assert.NotNull(Text(root, "metadata", "name"));
                docs.Add(root);
            }
        }

        Assert.NotEmpty(docs);
        return docs;
    }

    private static YamlMappingNode Single(List<YamlMappingNode> docs, string kind, string name) =>
        Assert.Single(docs, d => Text(d, "kind") == kind && Text(d, "metadata", "name") == name);

    private static YamlNode? Find(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var child))
            {
                return null;
            }

            node = child;
        }

        return node;
    }

    private static string? Text(YamlNode node, params string[] path) => (Find(node, path) as YamlScalarNode)?.Value;

    private static YamlMappingNode Map(YamlNode node, params string[] path) => Assert.IsType<YamlMappingNode>(Find(node, path));

    private static YamlSequenceNode Seq(YamlNode node, params string[] path) => Assert.IsType<YamlSequenceNode>(Find(node, path));

    private static HashSet<string> Labels(YamlMappingNode map) =>
        [.. map.Children.Select(kv => ((YamlScalarNode)kv.Key).Value + "=" + ((YamlScalarNode)kv.Value).Value)];

    private static string Flag(List<string> args, string name)
    {
        var index = args.IndexOf(name);
        Assert.True(index > 0 && index + 1 < args.Count, $"{name} missing in {string.Join(' ', args)}");
        return args[index + 1];
    }

    private static int PortOf(string address) => int.Parse(address[(address.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);

    private static int ResolvePort(string port, Dictionary<string, int> named) =>
        int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? number : named[port];
}
