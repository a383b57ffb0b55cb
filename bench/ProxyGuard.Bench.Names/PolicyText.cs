using System.Text;

namespace ProxyGuard.Bench.Names;

/// <summary>The policy-scale micro-benchmark's generated policy (exact names, wildcards, /32 ranges, methods, path globs).</summary>
internal static class PolicyText
{
    public static string Generate(int rules, int patternsPerRule)
    {
        var yaml = new StringBuilder("version: 1\ndefault: deny\nrules:\n");
        for (var i = 0; i < rules; i++)
        {
            yaml.Append("  - name: r").Append(i).Append("\n    hosts: [");
            for (var p = 0; p < patternsPerRule; p++)
            {
                yaml.Append(p == 0 ? string.Empty : ", ");
                yaml.Append((p % 3) switch
                {
                    0 => $"api{i}-{p}.example.com",
                    1 => $"\"*.svc{i}-{p}.example.net\"",
                    _ => $"\"10.{i / 256 % 256}.{i % 256}.{p}/32\"",
                });
            }

            yaml.Append("]\n    methods: [GET, POST]\n    paths: [\"/v1/repos/**\", \"/v1/items/*\"]\n    action: ")
                .Append(i % 10 == 9 ? "deny" : "allow").Append('\n');
        }

        return yaml.ToString();
    }
}
