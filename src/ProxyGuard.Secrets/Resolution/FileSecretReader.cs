using System.Text;
using ProxyGuard.Policy.IO;

namespace ProxyGuard.Secrets.Resolution;

/// <summary>Reads <c>file:</c> secrets and token files with ssh-StrictModes-like permission checks.</summary>
internal static class FileSecretReader
{
    private const UnixFileMode UnsafeModes = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    /// <summary>Reads the file, trims trailing CR/LF, refuses unsafe modes, directories, FIFOs, devices, empty and oversized files, within a time bound.</summary>
    public static string Read(string reference, string path, int maxBytes, TimeSpan? timeout = null)
    {
        if (Directory.Exists(path))
        {
            throw new SecretUnavailableException(reference,
                $"'{path}' is a directory; reference one file in it as file:{Path.TrimEndingDirectorySeparator(path)}/NAME");
        }

        if (!File.Exists(path))
        {
            throw new SecretUnavailableException(reference, $"file '{path}' does not exist");
        }

        CheckMode(reference, path);

        byte[] bytes;
        try
        {
            // Regular files only (a FIFO, device or socket is refused, also behind a symlink), at most maxBytes,
            // and never longer than the time bound: a reload or POST /api/policy/reload cannot hang on it.
            bytes = BoundedFile.ReadAllBytes(path, maxBytes, timeout ?? BoundedFile.DefaultTimeout);
        }
        catch (BoundedFileException ex)
        {
            throw new SecretUnavailableException(reference, ex.Message);
        }
        catch (IOException ex)
        {
            throw new SecretUnavailableException(reference, $"cannot read '{path}': {ex.GetType().Name}");
        }
        catch (UnauthorizedAccessException)
        {
            throw new SecretUnavailableException(reference, $"permission denied reading '{path}'");
        }

        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new SecretUnavailableException(reference, $"file '{path}' is not valid UTF-8 text");
        }
        finally
        {
            Array.Clear(bytes);
        }

        text = text.TrimEnd('\r', '\n');
        if (text.Length == 0)
        {
            throw new SecretUnavailableException(reference, $"file '{path}' is empty");
        }

        if (text.Contains('\n', StringComparison.Ordinal) || text.Contains('\r', StringComparison.Ordinal))
        {
            throw new SecretUnavailableException(reference, $"file '{path}' holds more than one line; a secret value is one line");
        }

        return text;
    }

    /// <summary>Refuses files that anyone but their owner can write (the target of a symlink is what counts).</summary>
    public static void CheckMode(string reference, string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        UnixFileMode mode;
        try
        {
            mode = File.GetUnixFileMode(path);
        }
        catch (IOException ex)
        {
            throw new SecretUnavailableException(reference, $"cannot stat '{path}': {ex.GetType().Name}");
        }
        catch (UnauthorizedAccessException)
        {
            throw new SecretUnavailableException(reference, $"permission denied on '{path}'");
        }

        if ((mode & UnsafeModes) != 0)
        {
            throw new SecretUnavailableException(reference,
                $"file '{path}' is writable by group or others (mode {ToOctal(mode)}); run chmod go-w on it");
        }
    }

    private static string ToOctal(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0');
}
