using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ProxyGuard.Tests.Shared;

/// <summary>
/// A real PostgreSQL server for one test: <c>initdb</c> into a temporary directory, <c>postgres</c> on a free
/// loopback port, stopped (and the directory removed) on dispose. It can be stopped and started again on the same
/// port and data, for outage tests. The server runs as the <c>postgres</c> system user when the tests run as root
/// (PostgreSQL refuses to run as root), through <c>setpriv</c>, which execs: the process this fixture starts is the
/// postmaster itself, so stopping it signals a process this test started, never one found by name.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string User = "proxyguard";

    private readonly string _directory;
    private readonly string _binDir;
    private readonly bool _dropPrivileges;
    private readonly StringBuilder _log = new();
    private Process? _process;

    private PostgresServer(string directory, string binDir, int port, bool dropPrivileges)
    {
        _directory = directory;
        _binDir = binDir;
        Port = port;
        _dropPrivileges = dropPrivileges;
    }

    public int Port { get; }

    public string DataDirectory => Path.Combine(_directory, "data");

    /// <summary>The postmaster's process id while it runs.</summary>
    public int? Pid => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>An ADO.NET connection string for the <c>postgres</c> database (trust authentication on loopback).</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username={User};Database=postgres;Pooling=false";

    /// <summary>A URL form for command-line flags.</summary>
    public string Url => $"postgres://{User}@127.0.0.1:{Port}/postgres";

    /// <summary>What the server printed so far.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>The directory holding initdb/postgres, or null when PostgreSQL is not installed.</summary>
    public static string? FindBinDirectory()
    {
        if (Environment.GetEnvironmentVariable("PG_POSTGRES_BIN") is { Length: > 0 } configured)
        {
            return File.Exists(Path.Combine(configured, "postgres")) ? configured : null;
        }

        const string root = "/usr/lib/postgresql";
        if (!Directory.Exists(root))
        {
            return null;
        }

        return Directory.GetDirectories(root)
            .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), out var v) ? v : 0))
            .Where(c => File.Exists(Path.Combine(c.Dir, "postgres")) && File.Exists(Path.Combine(c.Dir, "initdb")))
            .OrderByDescending(c => c.Version)
            .Select(c => c.Dir)
            .FirstOrDefault();
    }

    /// <summary>Whether a server can be started here (CI installs Debian's postgresql).</summary>
    public static bool Available => FindBinDirectory() is not null;

    public static async Task<PostgresServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var binDir = FindBinDirectory()
            ?? throw new InvalidOperationException("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)");
        var directory = Directory.CreateTempSubdirectory("pg-postgres-").FullName;
        var dropPrivileges = Environment.IsPrivilegedProcess;
        var server = new PostgresServer(directory, binDir, FreePort(), dropPrivileges);
        try
        {
            if (dropPrivileges)
            {
                await server.RunToEndAsync("/usr/bin/chown", ["-R", "postgres:postgres", directory], asPostgres: false, cancellationToken);
            }

            await server.RunToEndAsync(
                Path.Combine(binDir, "initdb"),
                ["-D", server.DataDirectory, "-U", User, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
                asPostgres: true,
                cancellationToken);
            await server.StartAgainAsync(cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the postmaster (again) on the same port and data; returns once it accepts connections.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (_process is { HasExited: false })
        {
            throw new InvalidOperationException("the server is already running");
        }

        _process?.Dispose();
        string[] args =
        [
            "-D", DataDirectory, "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + _directory,
            "-c", "fsync=off", "-c", "synchronous_commit=on", "-c", "full_page_writes=off",
            "-c", "max_connections=200", "-c", "shared_buffers=32MB",
        ];
        _process = Start(Path.Combine(_binDir, "postgres"), args, asPostgres: true);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"postgres exited with {_process.ExitCode}: {Log}");
            }

            if (Log.Contains("ready to accept connections", StringComparison.Ordinal) && await AcceptsTcpAsync())
            {
                return;
            }

            try
            {
                await Task.Delay(50, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException("postgres did not start within 60 s: " + Log);
            }
        }
    }

    /// <summary>Stops the server with a fast shutdown (SIGINT: open transactions are rolled back, clients dropped).</summary>
    public async Task StopAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }

        if (Signal(process.Id, 2) != 0)
        {
            process.Kill(entireProcessTree: true);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process?.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private async Task<bool> AcceptsTcpAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task RunToEndAsync(string file, string[] args, bool asPostgres, CancellationToken cancellationToken)
    {
        using var process = Start(file, args, asPostgres);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(file)} exited with {process.ExitCode}: {Log}");
        }
    }

    private Process Start(string file, string[] args, bool asPostgres)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        if (asPostgres && _dropPrivileges)
        {
            psi.FileName = "/usr/bin/setpriv";
            foreach (var a in new[] { "--reuid=postgres", "--regid=postgres", "--init-groups", "--", file })
            {
                psi.ArgumentList.Add(a);
            }
        }
        else
        {
            psi.FileName = file;
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["LC_ALL"] = "C";
        psi.Environment["HOME"] = _directory;
        var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            if (_log.Length < 256 * 1024)
            {
                _log.AppendLine(line);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    private static extern int Signal(int pid, int signal);
}
