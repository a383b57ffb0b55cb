namespace ProxyGuard.Policy;

/// <summary>
/// StrictModes-style checks for configuration and secret files: refuse a file that group or others may write, or
/// one in a directory that group or others may write (unless the directory is sticky, like /tmp).
/// </summary>
public static class FilePermissions
{
    /// <summary>Returns <c>null</c> when <paramref name="path"/> is acceptable, otherwise the reason it is refused. Always <c>null</c> on Windows.</summary>
    public static string? Check(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            return null;
        }

        const UnixFileMode writableByOthers = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;
        var mode = File.GetUnixFileMode(fullPath);
        if ((mode & writableByOthers) != 0)
        {
            return $"refusing a file writable by group or others (mode {Octal(mode)}); run: chmod go-w {fullPath}";
        }

        var directory = Path.GetDirectoryName(fullPath);
        if (directory is not null)
        {
            var directoryMode = File.GetUnixFileMode(directory);
            if ((directoryMode & writableByOthers) != 0 && (directoryMode & UnixFileMode.StickyBit) == 0)
            {
                return $"refusing a file in a directory writable by group or others ({directory}, mode {Octal(directoryMode)}); run: chmod go-w {directory}";
            }
        }

        return null;
    }

    /// <summary>
    /// Key material and tokens (CA key, leaf key, admin token, installation key): <c>null</c> when
    /// <paramref name="path"/> does not exist or neither group nor others may write it, otherwise a
    /// one-line refusal naming the file and the <c>chmod</c> that fixes it. Always <c>null</c> on Windows.
    /// </summary>
    public static string? CheckPrivateFile(string path, string what) => CheckNotWritableByOthers(path, what, File.Exists, "600");

    /// <summary>
    /// The data and CA directories: <c>null</c> when <paramref name="path"/> does not exist or neither
    /// group nor others may write it, otherwise a one-line refusal with the <c>chmod</c> that fixes it.
    /// </summary>
    public static string? CheckPrivateDirectory(string path, string what) => CheckNotWritableByOthers(path, what, Directory.Exists, "700");

    private static string? CheckNotWritableByOthers(string path, string what, Func<string, bool> exists, string fix)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        var fullPath = Path.GetFullPath(path);
        if (!exists(fullPath))
        {
            return null;
        }

        var mode = File.GetUnixFileMode(fullPath);
        return (mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0
            ? $"refusing the {what} {fullPath}: it is writable by group or others (mode {Octal(mode)}); run: chmod {fix} {fullPath}"
            : null;
    }

    /// <summary>Creates <paramref name="path"/> (and missing parents) with mode 0700; an existing directory is left as it is.</summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows() || Directory.Exists(path))
        {
            Directory.CreateDirectory(path);
            return;
        }

        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xFFF, 8);
}
