namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Watches every directory entry that decides what the policy path reads: the policy's own name, every symbolic link
/// met while resolving it (a link to the file, a link to a directory on its way, such as a Kubernetes ConfigMap
/// volume's <c>..data</c>), and the name of the file finally reached, in its real directory. A change of any of them
/// (an in-place write of the target, a link retargeted by renaming a new link over it, the atomic <c>..data</c> swap)
/// is reported. <see cref="Refresh"/> recomputes the set after a change, so a retargeted link is followed.
/// </summary>
internal sealed class PolicyPathWatcher : IDisposable
{
    /// <summary>Symbolic links followed at most while resolving (as the kernel's limit).</summary>
    internal const int MaxLinks = 40;

    private readonly string _path;
    private readonly Action<ChangeKind> _changed;
    private readonly Action<string, string> _error;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Watch> _watches = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <param name="path">The full policy path as given.</param>
    /// <param name="changed">Called on a watcher thread for each relevant change.</param>
    /// <param name="error">Called with the directory and the message when a directory cannot be watched or lost events.</param>
    public PolicyPathWatcher(string path, Action<ChangeKind> changed, Action<string, string> error)
    {
        _path = path;
        _changed = changed;
        _error = error;
    }

    /// <summary>What a change was, for the reload's settle decision.</summary>
    internal enum ChangeKind
    {
        /// <summary>Content may have been written in place (or events were lost): wait for it to settle.</summary>
        Write,

        /// <summary>A complete entry arrived under a watched name by rename (atomic save, link swap).</summary>
        Rename,

        /// <summary>A watched entry disappeared; nothing new to read yet.</summary>
        Removed,
    }

    /// <summary>The directories watched now (for tests and diagnostics).</summary>
    public IReadOnlyCollection<string> Directories
    {
        get
        {
            lock (_lock)
            {
                return [.. _watches.Keys];
            }
        }
    }

    /// <summary>
    /// Recomputes the watched entries from the file system and adds or drops directory watchers to match. Returns why
    /// the policy's own directory cannot be watched, or null (the caller reports it; SIGHUP and the admin API still
    /// reload). Another directory on the way that cannot be watched is reported through the error callback.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "Each watch is owned by the dictionary and disposed when dropped or in Dispose.")]
    public string? Refresh()
    {
        var entries = Entries(_path);
        var primary = entries[0].Directory;
        var wanted = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (directory, name) in entries)
        {
            if (!wanted.TryGetValue(directory, out var names))
            {
                wanted[directory] = names = new HashSet<string>(StringComparer.Ordinal);
            }

            names.Add(name);
        }

        string? primaryProblem = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return null;
            }

            foreach (var stale in _watches.Keys.Where(d => !wanted.ContainsKey(d)).ToList())
            {
                _watches[stale].Dispose();
                _watches.Remove(stale);
            }

            foreach (var (directory, names) in wanted)
            {
                if (_watches.TryGetValue(directory, out var existing))
                {
                    existing.Names = names;
                    continue;
                }

                var watch = Watch.TryStart(directory, names, this, out var problem);
                if (watch is null)
                {
                    // A directory on the way that does not exist (yet) is not an error: the link's own entry is watched.
                    if (problem is not null && string.Equals(directory, primary, StringComparison.Ordinal))
                    {
                        primaryProblem = problem;
                    }
                    else if (problem is not null)
                    {
                        _error(directory, problem);
                    }

                    continue;
                }

                _watches[directory] = watch;
            }
        }

        return primaryProblem;
    }

    /// <summary>
    /// The (real directory, name) entries resolving <paramref name="path"/> reads: each symbolic link met, then the final
    /// name. Directories are physical paths (links already resolved), so a watcher on one sees that directory itself.
    /// A missing component ends the walk with the remaining path as the final entry.
    /// </summary>
    internal static IReadOnlyList<(string Directory, string Name)> Entries(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? "/";
        var result = new List<(string, string)>();
        var parts = new List<string>(Split(full[root.Length..]));
        var current = root;
        var links = 0;
        while (parts.Count > 0)
        {
            var part = parts[0];
            parts.RemoveAt(0);
            if (part is "" or ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }

            var candidate = Path.Join(current, part);
            string? target = null;
            if (links < MaxLinks)
            {
                try
                {
                    target = new FileInfo(candidate).LinkTarget;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    target = null;
                }
            }

            if (target is null)
            {
                if (parts.Count == 0 || !Directory.Exists(candidate))
                {
                    // The file reached (or the first missing component): watch its name where it would appear.
                    result.Add((current, part));
                    break;
                }

                current = candidate;
                continue;
            }

            result.Add((current, part));
            links++;
            if (Path.IsPathRooted(target))
            {
                current = Path.GetPathRoot(target) ?? root;
                target = target[current.Length..];
            }

            parts.InsertRange(0, Split(target));
        }

        if (result.Count == 0)
        {
            result.Add((Path.GetDirectoryName(full) ?? root, Path.GetFileName(full)));
        }

        return result;
    }

    private static string[] Split(string relative) => relative.Split('/', StringSplitOptions.RemoveEmptyEntries);

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var watch in _watches.Values)
            {
                watch.Dispose();
            }

            _watches.Clear();
        }
    }

    /// <summary>One directory's watcher and the names in it that matter.</summary>
    private sealed class Watch : IDisposable
    {
        private readonly FileSystemWatcher _watcher;
        private readonly PolicyPathWatcher _owner;
        private readonly string _directory;
        private volatile HashSet<string> _names;

        private Watch(FileSystemWatcher watcher, string directory, HashSet<string> names, PolicyPathWatcher owner)
        {
            _watcher = watcher;
            _directory = directory;
            _names = names;
            _owner = owner;
        }

        public HashSet<string> Names
        {
            set => _names = value;
        }

        [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "Ownership passes to the returned Watch, or it is disposed on failure.")]
        public static Watch? TryStart(string directory, HashSet<string> names, PolicyPathWatcher owner, out string? problem)
        {
            problem = null;
            if (!Directory.Exists(directory))
            {
                return null;
            }

            FileSystemWatcher? watcher = null;
            try
            {
                watcher = new FileSystemWatcher(directory)
                {
                    NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.Size | NotifyFilters.CreationTime,
                    IncludeSubdirectories = false,
                };
                var watch = new Watch(watcher, directory, names, owner);
                watcher.Changed += (_, e) => watch.On(e.Name, ChangeKind.Write);
                watcher.Created += (_, e) => watch.On(e.Name, ChangeKind.Write);
                watcher.Deleted += (_, e) => watch.On(e.Name, ChangeKind.Removed);
                watcher.Renamed += (_, e) =>
                {
                    watch.On(e.Name, ChangeKind.Rename);
                    watch.On(e.OldName, ChangeKind.Removed);
                };
                watcher.Error += (_, e) => watch.OnError(e.GetException().Message);
                watcher.EnableRaisingEvents = true;
                watcher = null;
                return watch;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or PlatformNotSupportedException or ArgumentException)
            {
                problem = ex.Message;
                return null;
            }
            finally
            {
                watcher?.Dispose();
            }
        }

        private void On(string? name, ChangeKind kind)
        {
            if (name is not null && _names.Contains(name))
            {
                _owner._changed(kind);
            }
        }

        private void OnError(string message)
        {
            // A directory that went away (the old target of a swapped link) ends its watch: the refresh after the swap
            // drops it. Anything else may have lost events: report it and treat it as a write, to be sure.
            if (!Directory.Exists(_directory))
            {
                _owner._changed(ChangeKind.Removed);
                return;
            }

            _owner._error(_directory, message);
            _owner._changed(ChangeKind.Write);
        }

        public void Dispose() => _watcher.Dispose();
    }
}
