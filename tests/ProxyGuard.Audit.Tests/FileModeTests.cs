namespace ProxyGuard.Audit.Tests;

/// <summary>Issue 20 class 5: the data directory is created 0700 and the database with its -wal and -shm 0600.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class FileModeTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public async Task New_store_files_are_owner_only()
    {
        using var dir = new TempDirectory();
        var data = Path.Combine(dir.Path, "new", "data");
        await using (var store = EventStore.Open(data))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
            foreach (var suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                var file = Path.Combine(data, "events.db" + suffix);
                Assert.True(File.Exists(file), file);
                Assert.Equal(Private, File.GetUnixFileMode(file));
            }
        }
    }

    [Fact]
    public async Task An_existing_world_readable_database_is_narrowed_to_0600()
    {
        using var dir = new TempDirectory();
        await using (EventStore.Open(dir.Path))
        {
        }

        var db = Path.Combine(dir.Path, "events.db");
        File.SetUnixFileMode(db, Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        await using (EventStore.Open(dir.Path))
        {
            Assert.Equal(Private, File.GetUnixFileMode(db));
            Assert.Equal(Private, File.GetUnixFileMode(db + "-wal"));
        }
    }
}
