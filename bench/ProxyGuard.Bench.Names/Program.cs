using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ProxyGuard.Bench.Names;

/// <summary>
/// Scale benchmarks that need a running proxy (issue 16), loopback only, bounded in count and time:
/// <list type="bullet">
/// <item><c>names</c>: CONNECT + TLS handshakes with many distinct SNI names under one <c>*.</c> rule (no upstream is
/// dialled: the handshake with the proxy's minted leaf is the work measured), sliced, with the proxy's CPU per
/// handshake, its RSS and the certificate cache's size; the same for one name repeated, before and after.</item>
/// <item><c>reload</c>: a 10,000-rule policy loaded at start and reloaded through the admin API, timed (wall and the
/// proxy's CPU).</item>
/// </list>
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var options = Options.Parse(args);
        var dir = Directory.CreateTempSubdirectory("pg-bench-names-");
        try
        {
            return options.Mode switch
            {
                "names" => await NamesAsync(options, dir.FullName),
                "reload" => await ReloadAsync(options, dir.FullName),
                _ => Usage(),
            };
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: ProxyGuard.Bench.Names names [--names 100000] [--slice 10000] [--concurrency 8] [--cache N] [--repeat 2000] [--max-seconds 900]");
        Console.Error.WriteLine("       ProxyGuard.Bench.Names reload [--reloads 5]");
        return 2;
    }

    private static async Task<int> NamesAsync(Options o, string dir)
    {
        const string Policy = """
            version: 1
            default: deny
            content:
              builtin: none
            rules:
              - name: many-names
                hosts: ["*.names.test"]
                action: allow
            """;
        var environment = new Dictionary<string, string>();
        if (o.Cache is { } cache)
        {
            environment["PROXYGUARD_LIMIT_CERTIFICATE_CACHE_SIZE"] = cache.ToString(CultureInfo.InvariantCulture);
        }

        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(dir, "proxy"), Policy, environment);
        var ca = X509CertificateLoader.LoadCertificateFromFile(proxy.CaPath);
        var client = new HandshakeClient(proxy.ProxyUrl, ca);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"names: {o.Names:N0} distinct SNI names in slices of {o.Slice:N0}, {o.Concurrency} at a time, certificate cache {(o.Cache is null ? "default" : o.Cache.Value.ToString("N0", CultureInfo.InvariantCulture))}; {Environment.ProcessorCount} cores; load average {LoadAverage()}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"proxy RSS at start: {proxy.StatusKiB("VmRSS"):N0} KiB"));

        // Warm-up (JIT of both sides), then one name repeated: the cost of a handshake served from the cache.
        await RunAsync(client, o.Concurrency, 500, i => "warm.names.test");
        var before = await SliceAsync(proxy, client, o.Concurrency, o.Repeat, _ => "hot.names.test");
        Console.WriteLine("| slice | names | handshakes/s | proxy CPU ms/handshake | failures | proxy RSS KiB | cache entries | minted |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        Print("one name repeated (before)", before);

        var total = Stopwatch.StartNew();
        var slices = new List<SliceResult>();
        for (var start = 0; start < o.Names; start += o.Slice)
        {
            var first = start;
            var count = Math.Min(o.Slice, o.Names - start);
            var result = await SliceAsync(proxy, client, o.Concurrency, count, i => $"n{first + i}.names.test");
            slices.Add(result);
            Print($"new names {first + 1:N0}-{first + count:N0}", result);
            if (total.Elapsed.TotalSeconds > o.MaxSeconds && start + o.Slice < o.Names)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped after {total.Elapsed.TotalSeconds:F0} s (--max-seconds {o.MaxSeconds})"));
                break;
            }
        }

        var after = await SliceAsync(proxy, client, o.Concurrency, o.Repeat, _ => "hot.names.test");
        Print("one name repeated (after)", after);
        var revisit = await SliceAsync(proxy, client, o.Concurrency, Math.Min(o.Repeat, o.Names), i => $"n{i}.names.test");
        Print("first names again (evicted when the cache is smaller than the run)", revisit);

        var newNames = slices.Sum(s => s.Ok);
        var rates = slices.Select(s => s.PerSecond).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"new-name handshakes: {newNames:N0} ok; slowest slice {rates.Min():F0}/s, fastest {rates.Max():F0}/s, last/first {rates[^1] / rates[0]:F2}x; CPU per new name {slices.Sum(s => s.CpuMs) / Math.Max(1, newNames):F3} ms vs repeated name {(before.CpuMs + after.CpuMs) / Math.Max(1, before.Ok + after.Ok):F3} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"proxy RSS: end {proxy.StatusKiB("VmRSS"):N0} KiB, peak (VmHWM) {proxy.StatusKiB("VmHWM"):N0} KiB; load average {LoadAverage()}"));
        return slices.Sum(s => s.Failures) + before.Failures + after.Failures + revisit.Failures == 0 ? 0 : 1;
    }

    private static async Task<int> ReloadAsync(Options o, string dir)
    {
        var policy = PolicyText.Generate(10_000, 5);
        var started = Stopwatch.StartNew();
        await using var proxy = await ProxyProcess.StartAsync(Path.Combine(dir, "proxy"), policy, new Dictionary<string, string>());
        var startCpu = proxy.CpuTime();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"reload: 10,000 rules, 50,000 host patterns, {policy.Length / 1024:N0} KiB; {Environment.ProcessorCount} cores; load average {LoadAverage()}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"start to listening (policy loaded, JIT included): {started.Elapsed.TotalMilliseconds:F0} ms wall, proxy CPU {startCpu.TotalMilliseconds:F0} ms"));
        Console.WriteLine("| reload | wall ms | proxy CPU ms | status |");
        Console.WriteLine("|---:|---:|---:|---:|");
        var cpus = new List<double>();
        for (var i = 0; i < o.Reloads; i++)
        {
            var cpu = proxy.CpuTime();
            var watch = Stopwatch.StartNew();
            var (status, body) = await ReloadOnceAsync(proxy);
            watch.Stop();
            var ms = (proxy.CpuTime() - cpu).TotalMilliseconds;
            cpus.Add(ms);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {i + 1} | {watch.Elapsed.TotalMilliseconds:F0} | {ms:F0} | {status} |"));
            if (status != 200)
            {
                Console.Error.WriteLine(body);
                return 1;
            }
        }

        cpus.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median reload: proxy CPU {cpus[cpus.Count / 2]:F0} ms; load average {LoadAverage()}"));
        return 0;

        static Task<(int, string)> ReloadOnceAsync(ProxyProcess proxy) => proxy.ReloadAsync();
    }

    private static void Print(string label, SliceResult r) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {label} | {r.Ok + r.Failures:N0} | {r.PerSecond:F0} | {r.CpuMs / Math.Max(1, r.Ok):F3} | {r.Failures} | {r.RssKiB:N0} | {r.CacheEntries:N0} | {r.Minted:N0} |"));

    private static async Task<SliceResult> SliceAsync(ProxyProcess proxy, HandshakeClient client, int concurrency, int count, Func<int, string> name)
    {
        var cpu = proxy.CpuTime();
        var watch = Stopwatch.StartNew();
        var (ok, failures) = await RunAsync(client, concurrency, count, name);
        watch.Stop();
        var cpuMs = (proxy.CpuTime() - cpu).TotalMilliseconds;
        return new SliceResult(ok, failures, ok / watch.Elapsed.TotalSeconds, cpuMs, proxy.StatusKiB("VmRSS"),
            await proxy.MetricAsync("proxyguard_certificate_cache_entries"), await proxy.MetricAsync("proxyguard_certificates_minted_total"));
    }

    private static async Task<(int Ok, int Failures)> RunAsync(HandshakeClient client, int concurrency, int count, Func<int, string> name)
    {
        var next = -1;
        var ok = 0;
        var failures = 0;
        var workers = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                if (await client.HandshakeAsync(name(i)))
                {
                    Interlocked.Increment(ref ok);
                }
                else
                {
                    Interlocked.Increment(ref failures);
                }
            }
        });
        await Task.WhenAll(workers);
        return (ok, failures);
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private readonly record struct SliceResult(int Ok, int Failures, double PerSecond, double CpuMs, long RssKiB, double CacheEntries, double Minted);

    private sealed record Options(string Mode, int Names, int Slice, int Concurrency, int? Cache, int Repeat, int MaxSeconds, int Reloads)
    {
        public static Options Parse(string[] args)
        {
            var o = new Options(args.Length > 0 ? args[0] : string.Empty, 100_000, 10_000, 8, null, 2_000, 900, 5);
            for (var i = 1; i + 1 < args.Length; i += 2)
            {
                var value = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                o = args[i] switch
                {
                    "--names" => o with { Names = value },
                    "--slice" => o with { Slice = value },
                    "--concurrency" => o with { Concurrency = value },
                    "--cache" => o with { Cache = value },
                    "--repeat" => o with { Repeat = value },
                    "--max-seconds" => o with { MaxSeconds = value },
                    "--reloads" => o with { Reloads = value },
                    _ => throw new ArgumentException("unknown option " + args[i]),
                };
            }

            return o;
        }
    }
}

/// <summary>CONNECT through the proxy, then a TLS handshake with the leaf it mints for the name; closed right after.</summary>
internal sealed class HandshakeClient(Uri proxy, X509Certificate2 ca)
{
    public async Task<bool> HandshakeAsync(string host)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync(proxy.Host, proxy.Port, timeout.Token);
            var stream = tcp.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n"), timeout.Token);
            var head = new byte[1024];
            var read = 0;
            while (read < head.Length)
            {
                var n = await stream.ReadAsync(head.AsMemory(read, 1), timeout.Token);
                if (n == 0)
                {
                    return false;
                }

                read += n;
                if (read >= 4 && head[read - 4] == '\r' && head[read - 3] == '\n' && head[read - 2] == '\r' && head[read - 1] == '\n')
                {
                    break;
                }
            }

            if (!Encoding.ASCII.GetString(head, 0, read).StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
            {
                return false;
            }

            await using var tls = new SslStream(stream, leaveInnerStreamOpen: false);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
                // The leaf must name the host and come from the proxy's CA (a full chain build per handshake would
                // spend the shared cores on the client).
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                    certificate is not null && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0
                    && string.Equals(certificate.Issuer, ca.Subject, StringComparison.Ordinal),
            }, timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
        {
            return false;
        }
    }
}
