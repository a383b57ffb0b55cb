using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ProxyGuard.Policy.IO;

/// <summary>A file that could not be read within the bounds of <see cref="BoundedFile"/>. The message names the file and the reason.</summary>
public sealed class BoundedFileException : IOException
{
    public BoundedFileException(string message)
        : base(message)
    {
    }

    public BoundedFileException()
    {
    }

    public BoundedFileException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Reads configuration files (policies, CA bundles, <c>file:</c> secrets) so that reading can neither hang nor run
/// away: only a regular file is read (a FIFO, device, socket or directory is refused, also behind a symlink),
/// never more than a size bound, and never for longer than a time bound.
/// On Linux the file is opened non-blocking and its type checked on the open descriptor, so a FIFO
/// swapped in after a check cannot block the open.
/// </summary>
public static partial class BoundedFile
{
    /// <summary>The default time bound for one file.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    private const int ORdOnly = 0;
    private const int ONoCtty = 0x100;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const uint StatxMode = 0x2;
    private const uint StatxSize = 0x200;

    /// <summary>Reads the whole file. Throws <see cref="BoundedFileException"/> for every refusal (never hangs).</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        var read = Task.Factory.StartNew(
            () => ReadCore(path, maxBytes), CancellationToken.None, TaskCreationOptions.DenyChildAttach | TaskCreationOptions.LongRunning, TaskScheduler.Default);
        bool completed;
        try
        {
            completed = read.Wait(timeout);
        }
        catch (AggregateException ex) when (ex.InnerException is not null)
        {
            throw ex.InnerException is BoundedFileException bounded ? bounded : new BoundedFileException($"cannot read '{path}': {Reason(ex.InnerException)}", ex.InnerException);
        }

        if (!completed)
        {
            // The reader thread is left to finish (or stay blocked in the kernel) on its own; the bytes it may still
            // produce are wiped and any error observed.
            _ = read.ContinueWith(
                t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        Array.Clear(t.Result);
                    }
                    else
                    {
                        _ = t.Exception;
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            throw new BoundedFileException($"reading '{path}' did not finish within {timeout.TotalSeconds:0.###} s");
        }

        return read.Result;
    }

    private static string Reason(Exception ex) => ex switch
    {
        FileNotFoundException or DirectoryNotFoundException => "file not found",
        UnauthorizedAccessException => "permission denied",
        _ => ex.Message,
    };

    private static byte[] ReadCore(string path, long maxBytes)
    {
        if (OperatingSystem.IsLinux())
        {
            SafeFileHandle? handle = null;
            try
            {
#pragma warning disable CA2000 // disposed below: by the catch, or by the using around the read
                handle = OpenLinux(path, maxBytes);
#pragma warning restore CA2000
            }
            catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
            {
                // No statx in this libc: fall back to the portable checks below.
                handle?.Dispose();
                handle = null;
            }

            if (handle is not null)
            {
                using (handle)
                {
                    return ReadBounded(handle, path, maxBytes);
                }
            }
        }

        return ReadPortable(path, maxBytes);
    }

    private static SafeFileHandle OpenLinux(string path, long maxBytes)
    {
        var fd = Open(path, ORdOnly | ONoCtty | ONonBlock | OCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new BoundedFileException(errno switch
            {
                2 => $"'{path}' does not exist",
                13 => $"permission denied reading '{path}'",
                6 => $"'{path}' is not a regular file (a socket or device)",
                _ => $"cannot open '{path}': {Marshal.GetPInvokeErrorMessage(errno)}",
            });
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var buffer = new byte[256];
            if (Statx(fd, string.Empty, AtEmptyPath, StatxType | StatxMode | StatxSize, buffer) != 0)
            {
                throw new BoundedFileException($"cannot stat '{path}': {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }

            var mode = BitConverter.ToUInt16(buffer, 28);
            var size = BitConverter.ToInt64(buffer, 40);
            var type = mode & 0xF000;
            if (type != 0x8000)
            {
                throw new BoundedFileException($"'{path}' is {Describe(type)}, not a regular file");
            }

            if (size > maxBytes)
            {
                throw new BoundedFileException($"'{path}' is larger than {maxBytes} bytes");
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static string Describe(int type) => type switch
    {
        0x1000 => "a FIFO (named pipe)",
        0x2000 => "a character device",
        0x6000 => "a block device",
        0x4000 => "a directory",
        0xC000 => "a socket",
        _ => "a special file",
    };

    private static byte[] ReadPortable(string path, long maxBytes)
    {
        if (Directory.Exists(path))
        {
            throw new BoundedFileException($"'{path}' is a directory, not a regular file");
        }

        if (!File.Exists(path))
        {
            throw new BoundedFileException($"'{path}' does not exist");
        }

        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
#pragma warning disable CA2000 // disposing this probe stream would close the handle, which is read next and disposed by its using
        if (!new FileStream(handle, FileAccess.Read, 1).CanSeek)
#pragma warning restore CA2000
        {
            throw new BoundedFileException($"'{path}' is not a regular file");
        }

        return ReadBounded(handle, path, maxBytes);
    }

    /// <summary>Reads at most <paramref name="maxBytes"/> + 1 bytes, so a file that grows while it is read is still caught.</summary>
    private static byte[] ReadBounded(SafeFileHandle handle, string path, long maxBytes)
    {
        var length = RandomAccess.GetLength(handle);
        var buffer = new byte[Math.Min(maxBytes + 1, Math.Max(length + 1, 4096))];
        var total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (total > maxBytes)
                {
                    Array.Clear(buffer);
                    throw new BoundedFileException($"'{path}' is larger than {maxBytes} bytes");
                }

                var bigger = new byte[Math.Min(maxBytes + 1, (long)buffer.Length * 2)];
                buffer.CopyTo(bigger, 0);
                Array.Clear(buffer);
                buffer = bigger;
            }

            var n = RandomAccess.Read(handle, buffer.AsSpan(total), total);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        if (total > maxBytes)
        {
            Array.Clear(buffer);
            throw new BoundedFileException($"'{path}' is larger than {maxBytes} bytes");
        }

        var result = buffer.AsSpan(0, total).ToArray();
        Array.Clear(buffer);
        return result;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);
}
