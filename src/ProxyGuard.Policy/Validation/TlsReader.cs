using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy.Validation;

/// <summary>Reads <c>tls</c>. The CA files themselves are read when the proxy builds its snapshot (<see cref="TlsSpec.LoadUpstreamRoots"/>).</summary>
internal static class TlsReader
{
    public static TlsSpec Read(SectionContext c, YNode? node)
    {
        var files = new List<string>();
        var positions = new List<(int Line, int Column)>();
        var map = c.R.Mapping(node, "tls", PolicyKeys.Tls);
        if (map?.Get("upstream_ca_files") is { } filesNode && c.R.StringList(filesNode, "tls.upstream_ca_files", allowEmpty: true) is { } list)
        {
            for (var i = 0; i < list.Count; i++)
            {
                var value = list[i].Value;
                if (value.Length == 0 || value.Any(char.IsControl))
                {
                    c.R.Error(list[i], $"tls.upstream_ca_files[{i}]", "invalid file path");
                    continue;
                }

                files.Add(Path.GetFullPath(value, c.BaseDirectory));
                positions.Add((list[i].Line, list[i].Column));
            }
        }

        return new TlsSpec { UpstreamCaFiles = files, UpstreamCaFilePositions = positions };
    }
}
