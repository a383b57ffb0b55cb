namespace ProxyGuard.Policy.Tests;

public sealed class FileLoadingTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("pg-policy-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string Write(string name, string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.WriteAllText(path, text);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }

        return path;
    }

    [Fact]
    public void LoadsAFileAndHashesItsBytes()
    {
        var text = "version: 1\nrules:\n  - {name: a, hosts: [a.example.com], action: allow}\n";
        var path = Write("p.yaml", text);
        var result = PolicyLoader.LoadFile(path);
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        Assert.Equal(Path.GetFullPath(path), result.Policy!.FilePath);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text))), result.Policy.Sha256);
        Assert.True(result.Policy.LoadedAt <= DateTimeOffset.UtcNow);
    }

    [Fact]
    public void RefusesAWorldWritableFile()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var path = Write("open.yaml", "version: 1\n", (UnixFileMode)0b110_110_110);
        var result = PolicyLoader.LoadFile(path);
        Assert.False(result.Success);
        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal(1, diagnostic.Line);
        Assert.Equal(1, diagnostic.Column);
        Assert.Contains("writable by group or others (mode 0666)", diagnostic.Message, StringComparison.Ordinal);

        Assert.True(PolicyLoader.LoadFile(path, new PolicyLoadOptions { CheckFilePermissions = false }).Success);
    }

    [Fact]
    public void RefusesAGroupWritableFile()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var path = Write("group.yaml", "version: 1\n", (UnixFileMode)0b110_110_100);
        Assert.Contains("mode 0664", Assert.Single(PolicyLoader.LoadFile(path).Diagnostics).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesAFileInAWorldWritableDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var sub = Directory.CreateDirectory(Path.Combine(_dir.FullName, "open"));
        File.SetUnixFileMode(sub.FullName, (UnixFileMode)0b111_111_111);
        var path = Path.Combine(sub.FullName, "p.yaml");
        File.WriteAllText(path, "version: 1\n");
        File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);
        Assert.Contains("directory writable by group or others", Assert.Single(PolicyLoader.LoadFile(path).Diagnostics).Message, StringComparison.Ordinal);

        // a sticky directory (like /tmp) is fine
        File.SetUnixFileMode(sub.FullName, (UnixFileMode)0b1_111_111_111);
        Assert.True(PolicyLoader.LoadFile(path).Success);
    }

    [Fact]
    public void ReportsMissingFilesAndBadEncoding()
    {
        var missing = PolicyLoader.LoadFile(Path.Combine(_dir.FullName, "nope.yaml"));
        Assert.Contains("not found", Assert.Single(missing.Diagnostics).Message, StringComparison.Ordinal);

        var path = Path.Combine(_dir.FullName, "latin1.yaml");
        File.WriteAllBytes(path, [.. "version: 1\n# caf"u8, 0xE9, (byte)'\n']);
        Assert.Contains("UTF-8", Assert.Single(PolicyLoader.LoadFile(path).Diagnostics).Message, StringComparison.Ordinal);

        var bom = Path.Combine(_dir.FullName, "bom.yaml");
        File.WriteAllBytes(bom, [0xEF, 0xBB, 0xBF, .. "version: 1\n"u8]);
        Assert.True(PolicyLoader.LoadFile(bom).Success);
    }

    [Fact]
    public void UpstreamCaFilesResolveAgainstThePolicyDirectory()
    {
        var path = Write("tls.yaml", "version: 1\ntls:\n  upstream_ca_files: [corp.pem, ../x/y.pem, /abs/z.pem]\n");
        var tls = PolicyLoader.LoadFile(path).Policy!.Tls;
        Assert.Equal(Path.Combine(_dir.FullName, "corp.pem"), tls.UpstreamCaFiles[0]);
        Assert.Equal(Path.GetFullPath(Path.Combine(_dir.FullName, "../x/y.pem")), tls.UpstreamCaFiles[1]);
        Assert.Equal("/abs/z.pem", tls.UpstreamCaFiles[2]);
    }

    [Fact]
    public void DiagnosticsFormatAsFileLineColumn()
    {
        var path = Write("bad.yaml", "version: 1\nmode: strict\n");
        var diagnostic = Assert.Single(PolicyLoader.LoadFile(path).Diagnostics);
        Assert.Equal($"{path}:2:7: mode: invalid value 'strict'; expected enforce | audit", diagnostic.ToString());
    }

    [Fact]
    public void SecretReferenceValidatorSeesEveryReference()
    {
        var seen = new List<string>();
        var result = PolicyLoader.LoadText("""
            version: 1
            clients:
              - { id: a, token: env:A }
            secrets:
              - { name: s, value: "file:/run/s", hosts: [a.example.com] }
              - { name: t, value: "vault:kv/data/x#y", hosts: [a.example.com] }
            """, "v.yaml", new PolicyLoadOptions { SecretReferenceValidator = r => { seen.Add(r); return null; } });
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        Assert.Equal(["env:A", "file:/run/s", "vault:kv/data/x#y"], seen);
    }

    [Fact]
    public void KnownDetectorIdsAreEnforcedWhenGiven()
    {
        const string yaml = """
            version: 1
            content:
              builtin: [github-token, nope]
              rules:
                - { name: custom, pattern: 'x[0-9]{4}', action: log }
              exempt:
                - { detectors: [custom, github-token, nada], hosts: [a.example.com] }
            """;
        Assert.True(PolicyLoader.LoadText(yaml, "d.yaml").Success);
        var diagnostics = PolicyLoader.LoadText(yaml, "d.yaml", new PolicyLoadOptions { KnownDetectorIds = ["github-token"] }).Diagnostics;
        Assert.Equal(["d.yaml:3:27: content.builtin[1]: unknown detector 'nope'; see docs/detectors.md for the list", "d.yaml:7:43: content.exempt[0].detectors[2]: unknown detector 'nada'; see docs/detectors.md for the list"], diagnostics.Select(d => d.ToString()));
    }

    [Fact]
    public void AliasBombsAreRefused()
    {
        var yaml = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n";
        for (var i = 0; i < 8; i++)
        {
            yaml += $"{(char)('b' + i)}: &{(char)('b' + i)} [*{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}, *{(char)('a' + i)}]\n";
        }

        var diagnostic = Assert.Single(PolicyLoader.LoadText(yaml, "bomb.yaml").Diagnostics);
        Assert.Contains("alias bomb", diagnostic.Message, StringComparison.Ordinal);
    }
}
