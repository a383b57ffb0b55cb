using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Policy;

/// <summary>
/// A test PKI and an origin on 127.0.0.1, shared by a test class; each test starts its own proxy
/// with the policy it needs (written mode 0644 in a 0700 temporary directory).
/// </summary>
public sealed class PolicyOrigin : IAsyncLifetime
{
    public TempDir Dir { get; } = new();

    public TestPki Pki { get; } = new();

    public TestOrigin Origin { get; private set; } = null!;

    public string OriginCaPath { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Origin = await TestOrigin.StartAsync(Pki.Issue(["localhost", "127.0.0.1"]));
        OriginCaPath = Pki.WriteCaPem(Dir.Path);
    }

    public async Task DisposeAsync()
    {
        await Origin.DisposeAsync();
        Pki.Dispose();
        Dir.Dispose();
    }

    /// <summary>
    /// A complete policy: the origin's loopback address is reachable, content scanning is off, and
    /// <paramref name="body"/> (top-level keys: mode, clients, rules) follows. {HTTPS} and {HTTP}
    /// are replaced by the origin's ports.
    /// </summary>
    public string Policy(string body) => $"""
        version: 1
        default: deny
        network:
          allow_destinations: [127.0.0.0/8]
        content:
          builtin: none
        tls:
          upstream_ca_files: [{OriginCaPath}]

        """ + Ports(body);

    public string Ports(string text) => text
        .Replace("{HTTPS}", Origin.HttpsPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("{HTTP}", Origin.HttpPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public Task<ProxyProcess> StartProxyAsync(TempDir dir, string body, IDictionary<string, string>? environment = null) =>
        ProxyProcess.StartAsync(dir.File("proxy"), Policy(body), null, environment);

    public string HttpsUrl(string path, string host = "localhost") => $"https://{host}:{Origin.HttpsPort}{path}";

    public string HttpUrl(string path, string host = "localhost") => $"http://{host}:{Origin.HttpPort}{path}";

    /// <summary>True when a request whose raw target contains <paramref name="marker"/> reached the origin.</summary>
    public bool OriginSaw(string marker) => Origin.Received.Any(r => r.Contains(marker, StringComparison.Ordinal));
}

/// <summary>What curl reported for one request through the proxy.</summary>
public sealed record CurlResult(int Status, string Body, IReadOnlyDictionary<string, string> Headers, int ExitCode, string Stderr)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;

    public override string ToString() => $"status {Status}, exit {ExitCode}, headers [{string.Join("; ", Headers.Select(h => h.Key + ": " + h.Value))}], body {Body}, stderr {Stderr}";
}

/// <summary>Real clients used by the policy tests: curl (raw paths with --path-as-is) and raw sockets.</summary>
public static class PolicyClients
{
    /// <summary>
    /// Runs curl through the proxy (CONNECT for https, absolute-form for http) with the ProxyGuard CA
    /// as the only trust anchor; the path is sent exactly as written.
    /// </summary>
    public static async Task<CurlResult> CurlAsync(
        ProxyProcess proxy, string method, string url, string? proxyUser = null, string? data = null, string? workDir = null)
    {
        var headerFile = Path.Combine(proxy.Directory, $"curl-headers-{Guid.NewGuid():N}.txt");
        var args = new List<string>
        {
            "-sS", "--path-as-is", "--max-time", "60", "--proxy", proxy.ProxyUrl, "--cacert", proxy.CaPath,
            "-X", method, "-D", headerFile, "-o", "-", "-w", "\n%{http_code} %{http_connect}",
        };
        if (proxyUser is not null)
        {
            args.AddRange(["--proxy-user", proxyUser, "--proxy-basic"]);
        }

        if (data is not null)
        {
            args.AddRange(["--data-binary", data]);
        }

        args.Add(url);
        var result = await Cli.RunProgramAsync("curl", args, workDir ?? proxy.Directory, null);
        var stdout = result.Stdout;
        var lastLine = stdout.LastIndexOf('\n');
        var codes = stdout[(lastLine + 1)..].Split(' ');
        var body = lastLine > 0 ? stdout[..lastLine] : string.Empty;
        var status = int.Parse(codes[0], CultureInfo.InvariantCulture);
        var connect = int.Parse(codes[1], CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        if (File.Exists(headerFile))
        {
            // The last response's headers win (curl writes the CONNECT response first).
            foreach (var line in await File.ReadAllLinesAsync(headerFile))
            {
                if (line.StartsWith("HTTP/", StringComparison.Ordinal))
                {
                    headers.Clear();
                    continue;
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0)
                {
                    headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
                }
            }

            File.Delete(headerFile);
        }

        // A refused CONNECT: curl reports http_code 0 and the CONNECT code separately; use the CONNECT code.
        if (status == 0 && connect is not 0 and not 200)
        {
            status = connect;
        }

        return new CurlResult(status, body, headers, result.ExitCode, result.Stderr);
    }

    /// <summary>Sends a raw request head to the proxy and returns its response head (status line and headers).</summary>
    public static async Task<string> RawHeadAsync(ProxyProcess proxy, string head)
    {
        var uri = new Uri(proxy.ProxyUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var buffer = new MemoryStream();
        var chunk = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!Encoding.ASCII.GetString(buffer.ToArray()).Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(chunk, cts.Token);
            if (n == 0)
            {
                break;
            }

            buffer.Write(chunk, 0, n);
        }

        var text = Encoding.ASCII.GetString(buffer.ToArray());
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return end < 0 ? text : text[..(end + 4)];
    }

    public static string Basic(string user, string password) =>
        "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));

    /// <summary>Polls <paramref name="condition"/> until it holds or the time runs out; returns the time it took.</summary>
    public static async Task<TimeSpan> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> describe)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (await condition())
            {
                return sw.Elapsed;
            }

            if (sw.Elapsed > timeout)
            {
                throw new TimeoutException($"condition not reached in {timeout.TotalSeconds} s: {describe()}");
            }

            await Task.Delay(50);
        }
    }
}
