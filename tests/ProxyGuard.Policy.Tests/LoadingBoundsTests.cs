using System.Diagnostics;
using System.Text;
using ProxyGuard.Policy.IO;

namespace ProxyGuard.Policy.Tests;

/// <summary>
/// Policy loading cannot crash or hang (issue 20 class 3): nesting depth, file size, file type and read time are bounded,
/// and every violation is an ordinary diagnostic. Each call runs under a watchdog, so a regression fails instead of
/// hanging the run (a stack overflow would still end the test process, which fails the run as well).
/// </summary>
public sealed class LoadingBoundsTests : IDisposable
{
    private static readonly TimeSpan Watchdog = TimeSpan.FromSeconds(10);
    private static readonly PolicyLoadOptions NoPermissionCheck = new() { CheckFilePermissions = false };

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("pg-bounds-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static PolicyLoadResult Bounded(Func<PolicyLoadResult> load)
    {
        // Run on a thread with a large stack so that "does not overflow" is about the bound, not the stack size,
        // and with a watchdog so a hang fails the test.
        PolicyLoadResult? result = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = load();
            }
            catch (Exception ex)
            {
                error = ex;
            }
        }, 16 * 1024 * 1024) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(Watchdog), $"loading did not finish within {Watchdog.TotalSeconds} s");
        Assert.Null(error);
        return result!;
    }

    private static PolicyDiagnostic Single(PolicyLoadResult result)
    {
        Assert.False(result.Success);
        return Assert.Single(result.Diagnostics);
    }

    public static TheoryData<string, string, int> DeepDocuments => new()
    {
        { "flow-sequences", "version: 1\nrules: " + new string('[', 50_000), 2 },
        { "flow-mappings", "version: 1\nrules: " + string.Concat(Enumerable.Repeat("{a: ", 30_000)), 2 },
        { "mixed-flow", "version: 1\nrules: " + string.Concat(Enumerable.Repeat("[{a: ", 20_000)), 2 },
        { "closed-flow", "version: 1\nrules: " + new string('[', 20_000) + new string(']', 20_000) + "\n", 2 },
        { "block-sequences", "version: 1\nrules:\n  " + string.Concat(Enumerable.Repeat("- ", 20_000)) + "x\n", 3 },
        { "just-over-the-limit", "version: 1\nrules: " + new string('[', 65) + new string(']', 65) + "\n", 2 },
    };

    [Theory]
    [MemberData(nameof(DeepDocuments))]
    public void DeepNestingIsADiagnosticWithItsPosition(string name, string yaml, int line)
    {
        var diagnostic = Single(Bounded(() => PolicyLoader.LoadText(yaml, "deep.yaml")));
        Assert.True(diagnostic.Message.Contains("nested more than 64 deep", StringComparison.Ordinal), $"{name}: {diagnostic}");
        Assert.Equal(line, diagnostic.Line);
        Assert.True(diagnostic.Column > 1, diagnostic.ToString());
    }

    [Fact]
    public void NestingUpToTheLimitIsReadNormally()
    {
        // 64 levels including the top-level mapping: the document is read, and the schema then rejects the shape.
        var yaml = "version: 1\nrules: " + new string('[', 63) + new string(']', 63) + "\n";
        var result = Bounded(() => PolicyLoader.LoadText(yaml, "ok.yaml"));
        Assert.DoesNotContain(result.Diagnostics, d => d.Message.Contains("nested", StringComparison.Ordinal));
    }

    [Fact]
    public void DeepNestingInAFileIsADiagnosticToo()
    {
        var path = Path.Combine(_dir.FullName, "deep.yaml");
        File.WriteAllText(path, "version: 1\nrules: " + new string('[', 100_000));
        var diagnostic = Single(Bounded(() => PolicyLoader.LoadFile(path, NoPermissionCheck)));
        Assert.Contains("nested more than 64 deep", diagnostic.Message, StringComparison.Ordinal);
        Assert.StartsWith(path + ":2:", diagnostic.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A100MiBPolicyIsRefusedWithoutReadingIt()
    {
        var path = Path.Combine(_dir.FullName, "huge.yaml");
        using (var f = File.Create(path))
        {
            f.SetLength(100L * 1024 * 1024); // sparse
        }

        var sw = Stopwatch.StartNew();
        var diagnostic = Single(Bounded(() => PolicyLoader.LoadFile(path, NoPermissionCheck)));
        Assert.Contains("larger than 4 MiB", diagnostic.Message, StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), sw.Elapsed.ToString());
    }

    [Fact]
    public void OversizedTextIsRefused()
    {
        var yaml = "version: 1\n#" + new string('x', PolicyLoader.MaxFileBytes);
        Assert.Contains("larger than 4 MiB", Single(PolicyLoader.LoadText(yaml, "big.yaml")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFifoPolicyIsRefusedAtOnce()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fifo = MakeFifo("policy.yaml");
        var sw = Stopwatch.StartNew();
        var diagnostic = Single(Bounded(() => PolicyLoader.LoadFile(fifo)));
        Assert.Contains("FIFO", diagnostic.Message, StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), sw.Elapsed.ToString());
    }

    [Fact]
    public void ASymlinkToAFifoIsRefused()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fifo = MakeFifo("target");
        var link = Path.Combine(_dir.FullName, "policy.yaml");
        File.CreateSymbolicLink(link, fifo);
        var diagnostic = Single(Bounded(() => PolicyLoader.LoadFile(link)));
        Assert.Contains("FIFO", diagnostic.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DevZeroIsRefusedEvenWithoutThePermissionCheck()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var diagnostic = Single(Bounded(() => PolicyLoader.LoadFile("/dev/zero", NoPermissionCheck)));
        Assert.Contains("character device", diagnostic.Message, StringComparison.Ordinal);
        var link = Path.Combine(_dir.FullName, "zero.yaml");
        File.CreateSymbolicLink(link, "/dev/zero");
        Assert.Contains("character device", Single(Bounded(() => PolicyLoader.LoadFile(link, NoPermissionCheck))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BoundedFileRefusesEverySpecialFileAndOversizedFiles()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fifo = MakeFifo("f");
        Assert.Contains("FIFO", Assert.Throws<BoundedFileException>(() => BoundedFile.ReadAllBytes(fifo, 1024, Watchdog)).Message, StringComparison.Ordinal);
        Assert.Contains("character device", Assert.Throws<BoundedFileException>(() => BoundedFile.ReadAllBytes("/dev/zero", 1024, Watchdog)).Message, StringComparison.Ordinal);
        Assert.Contains("directory", Assert.Throws<BoundedFileException>(() => BoundedFile.ReadAllBytes(_dir.FullName, 1024, Watchdog)).Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", Assert.Throws<BoundedFileException>(() => BoundedFile.ReadAllBytes(Path.Combine(_dir.FullName, "missing"), 1024, Watchdog)).Message, StringComparison.Ordinal);

        var big = Path.Combine(_dir.FullName, "big");
        File.WriteAllBytes(big, new byte[1025]);
        Assert.Contains("larger than 1024 bytes", Assert.Throws<BoundedFileException>(() => BoundedFile.ReadAllBytes(big, 1024, Watchdog)).Message, StringComparison.Ordinal);

        var ok = Path.Combine(_dir.FullName, "ok");
        File.WriteAllBytes(ok, Encoding.UTF8.GetBytes("hello"));
        Assert.Equal("hello", Encoding.UTF8.GetString(BoundedFile.ReadAllBytes(ok, 5, Watchdog)));
    }

    [Fact]
    public void ARegularPolicyFileStillLoadsThroughTheBoundedReader()
    {
        // The regular-file path keeps working (the relative-path base directory is the policy's).
        var path = Path.Combine(_dir.FullName, "p.yaml");
        File.WriteAllText(path, "version: 1\ntls:\n  upstream_ca_files: [corp.pem]\n");
        var result = Bounded(() => PolicyLoader.LoadFile(path, NoPermissionCheck));
        Assert.True(result.Success, string.Join("\n", result.Diagnostics));
        Assert.Equal(Path.Combine(_dir.FullName, "corp.pem"), result.Policy!.Tls.UpstreamCaFiles[0]);
    }

    [Fact]
    public async Task AFifoCasesFileIsADiagnostic()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fifo = MakeFifo("cases.yaml");
        var load = Task.Run(() => PolicyCaseRunner.LoadFile(fifo));
        Assert.True(await Task.WhenAny(load, Task.Delay(Watchdog)) == load, "reading a FIFO cases file hung");
        var diagnostic = Assert.Single((await load).Diagnostics);
        Assert.Contains("FIFO", diagnostic.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CaFilesThatAreSpecialFilesAreRefusedAtTheirEntry()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fifo = MakeFifo("ca.pem");
        var link = Path.Combine(_dir.FullName, "zero.pem");
        File.CreateSymbolicLink(link, "/dev/zero");
        var path = Path.Combine(_dir.FullName, "p.yaml");
        File.WriteAllText(path, $"version: 1\ntls:\n  upstream_ca_files:\n    - {fifo}\n    - {link}\n");
        var tls = Bounded(() => PolicyLoader.LoadFile(path, NoPermissionCheck)).Policy!.Tls;

        var first = Assert.Throws<PolicyFileException>(() => tls.LoadUpstreamRoots(path, Watchdog)).Diagnostic;
        Assert.Equal((4, 7), (first.Line, first.Column));
        Assert.Contains("tls.upstream_ca_files[0]: ", first.Message, StringComparison.Ordinal);
        Assert.Contains("FIFO", first.Message, StringComparison.Ordinal);

        var onlyZero = new TlsSpec { UpstreamCaFiles = [tls.UpstreamCaFiles[1]], UpstreamCaFilePositions = [tls.UpstreamCaFilePositions[1]] };
        var second = Assert.Throws<PolicyFileException>(() => onlyZero.LoadUpstreamRoots(path, Watchdog)).Diagnostic;
        Assert.Equal((5, 7), (second.Line, second.Column));
        Assert.Contains("character device", second.Message, StringComparison.Ordinal);
    }

    private string MakeFifo(string name)
    {
        var path = Path.Combine(_dir.FullName, name);
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", ["-m", "600", path]) { UseShellExecute = false })!;
        mkfifo.WaitForExit(5000);
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }
}
