using ProxyGuard.Fuzz;

namespace ProxyGuard.PropertyTests;

/// <summary>
/// CI smoke of the fuzz targets: every committed seed input (fuzz/corpus/TARGET) and every regression input
/// (fuzz/regressions/TARGET, crashes found by fuzzing) runs through the same entry point the fuzzer drives, in-process.
/// </summary>
public sealed class FuzzCorpusReplayTests
{
    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (var name in FuzzTargets.All.Keys)
        {
            data.Add(name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Seed_corpus_and_regressions_pass_through_the_target(string target)
    {
        var entry = FuzzTargets.All[target];
        var corpus = Path.Combine(AppContext.BaseDirectory, "fuzz-corpus", target);
        Assert.True(Directory.Exists(corpus), $"no committed seed corpus for {target}");
        var files = Directory.EnumerateFiles(corpus).ToList();
        var regressions = Path.Combine(AppContext.BaseDirectory, "fuzz-regressions", target);
        if (Directory.Exists(regressions))
        {
            files.AddRange(Directory.EnumerateFiles(regressions));
        }

        Assert.NotEmpty(files);
        var failures = new List<string>();
        foreach (var file in files.Order(StringComparer.Ordinal))
        {
            try
            {
                entry(File.ReadAllBytes(file));
            }
            catch (Exception ex)
            {
                failures.Add($"{Path.GetFileName(file)}: {ex.GetType().Name}: {ex.Message}");
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Every_target_has_a_committed_seed_corpus()
    {
        Assert.Equal(15, FuzzTargets.All.Count);
        foreach (var target in FuzzTargets.All.Keys)
        {
            Assert.NotEmpty(Directory.EnumerateFiles(Path.Combine(AppContext.BaseDirectory, "fuzz-corpus", target)));
        }
    }
}
