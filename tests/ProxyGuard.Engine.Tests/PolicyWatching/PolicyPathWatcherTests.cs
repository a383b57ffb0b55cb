using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Tests.PolicyWatching;

/// <summary>Which directory entries the policy watcher watches for a path through symbolic links.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class PolicyPathWatcherTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("pg-watch-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void A_configmap_layout_watches_the_link_the_data_link_and_the_file_in_the_current_directory_then_follows_a_swap()
    {
        Directory.CreateDirectory(Path.Combine(_root, "..2026_1"));
        File.WriteAllText(Path.Combine(_root, "..2026_1", "policy.yaml"), "x");
        File.CreateSymbolicLink(Path.Combine(_root, "..data"), "..2026_1");
        File.CreateSymbolicLink(Path.Combine(_root, "policy.yaml"), "..data/policy.yaml");

        Assert.Equal(
            [(_root, "policy.yaml"), (_root, "..data"), (Path.Combine(_root, "..2026_1"), "policy.yaml")],
            PolicyPathWatcher.Entries(Path.Combine(_root, "policy.yaml")));

        Directory.CreateDirectory(Path.Combine(_root, "..2026_2"));
        File.WriteAllText(Path.Combine(_root, "..2026_2", "policy.yaml"), "y");
        File.Delete(Path.Combine(_root, "..data"));
        File.CreateSymbolicLink(Path.Combine(_root, "..data"), "..2026_2");

        Assert.Equal(
            [(_root, "policy.yaml"), (_root, "..data"), (Path.Combine(_root, "..2026_2"), "policy.yaml")],
            PolicyPathWatcher.Entries(Path.Combine(_root, "policy.yaml")));
    }

    [Fact]
    public void A_plain_file_is_one_entry_and_a_missing_one_is_watched_where_it_would_appear()
    {
        File.WriteAllText(Path.Combine(_root, "policy.yaml"), "x");
        Assert.Equal([(_root, "policy.yaml")], PolicyPathWatcher.Entries(Path.Combine(_root, "policy.yaml")));
        Assert.Equal([(_root, "gone.yaml")], PolicyPathWatcher.Entries(Path.Combine(_root, "gone.yaml")));
    }

    [Fact]
    public void Relative_links_with_dot_dot_resolve_physically_and_a_dangling_link_watches_its_target_name()
    {
        var a = Directory.CreateDirectory(Path.Combine(_root, "a")).FullName;
        var b = Directory.CreateDirectory(Path.Combine(_root, "b")).FullName;
        File.WriteAllText(Path.Combine(b, "real.yaml"), "x");
        File.CreateSymbolicLink(Path.Combine(a, "policy.yaml"), "../b/real.yaml");
        Assert.Equal([(a, "policy.yaml"), (b, "real.yaml")], PolicyPathWatcher.Entries(Path.Combine(a, "policy.yaml")));

        File.CreateSymbolicLink(Path.Combine(a, "dangling.yaml"), "../b/later.yaml");
        Assert.Equal([(a, "dangling.yaml"), (b, "later.yaml")], PolicyPathWatcher.Entries(Path.Combine(a, "dangling.yaml")));
    }

    [Fact]
    public void A_link_loop_ends_after_the_link_limit()
    {
        File.CreateSymbolicLink(Path.Combine(_root, "one"), "two");
        File.CreateSymbolicLink(Path.Combine(_root, "two"), "one");
        var entries = PolicyPathWatcher.Entries(Path.Combine(_root, "one"));
        Assert.InRange(entries.Count, 1, PolicyPathWatcher.MaxLinks + 1);
        Assert.All(entries, e => Assert.Equal(_root, e.Directory));
    }
}
