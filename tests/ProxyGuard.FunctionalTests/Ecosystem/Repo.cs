namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>Paths inside the repository the tests run from (samples, docs, Dockerfile).</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ProxyGuard.sln")) || File.Exists(Path.Combine(dir.FullName, "ProxyGuard.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }
}
