using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using ProxyGuard.Tests.Shared;

namespace ProxyGuard.Bench.Budgets;

/// <summary>
/// The latency a budget adds to a whole request, in one run: three proxy processes (the proxyguard executable, Release)
/// with the same rules, one without budgets, one with budgets kept locally, one with budgets shared through a
/// throw-away PostgreSQL (<c>--budget-store</c>), all in front of one loopback HTTPS origin. Keep-alive HTTPS
/// requests through each proxy in turn (rounds alternate between the proxies, the report shows each one's median
/// round): requests/s, p50 and p99 of the whole request as the client sees it, and the proxy process's CPU per
/// request (from its own CPU time, so the load generator and the origin do not count).
/// <c>dotnet run -c Release --project bench/ProxyGuard.Bench.Budgets -- --e2e [--seconds 5] [--rounds 3] [--warmup 10] [--connections 16] [--limit 1000000]</c>
/// </summary>
internal static class EndToEnd
{
    private const string Rules = """
        version: 1
        default: deny
        network:
          allow_destinations: [127.0.0.0/8]
        content:
          builtin: none
        tls:
          upstream_ca_files: [{CA}]
        rules:
          - name: api
            hosts: [localhost]
            ports: [{PORT}]
            action: allow
        """;

    private const string Budgets = """

        budgets:
          - name: slow-drip
            match: {rule: api}
            per: [client, host]
            requests: {LIMIT}/1m
            upload_bytes: 1GiB/1h
          - name: per-client
            per: [client]
            requests: {LIMIT}/1h
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = Program.Arg(args, "--seconds", 5);
        var rounds = Program.Arg(args, "--rounds", 3);
        var connections = Program.Arg(args, "--connections", 16);
        var limit = Program.Arg(args, "--limit", 1_000_000);
        var warmup = Program.Arg(args, "--warmup", 10);
        var dll = Path.Combine(AppContext.BaseDirectory, "proxyguard.dll");
        var dir = Directory.CreateTempSubdirectory("pg-budget-e2e-");
        try
        {
            using var originCert = SelfSigned();
            var caPath = Path.Combine(dir.FullName, "origin-ca.pem");
            await File.WriteAllTextAsync(caPath, originCert.ExportCertificatePem());
            await using var origin = await StartOriginAsync(originCert);
            var originUrl = $"https://localhost:{origin.Port}/ok";

            PostgresServer? postgres = null;
            if (PostgresServer.Available && !args.Contains("--no-postgres"))
            {
                postgres = await PostgresServer.StartAsync();
            }

            var rules = Rules.Replace("{PORT}", origin.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            var withBudgets = rules + Budgets.Replace("{LIMIT}", limit.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            var targets = new List<(string Name, ProxyRun Proxy)>();
            try
            {
                targets.Add(("no budgets", await ProxyRun.StartAsync(dll, Path.Combine(dir.FullName, "none"), rules.Replace("{CA}", caPath, StringComparison.Ordinal), [])));
                targets.Add(("budgets, local", await ProxyRun.StartAsync(dll, Path.Combine(dir.FullName, "local"), withBudgets.Replace("{CA}", caPath, StringComparison.Ordinal), [])));
                if (postgres is not null)
                {
                    targets.Add(("budgets, PostgreSQL store", await ProxyRun.StartAsync(
                        dll, Path.Combine(dir.FullName, "shared"), withBudgets.Replace("{CA}", caPath, StringComparison.Ordinal), ["--budget-store", postgres.Url])));
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"budgets end to end: keep-alive HTTPS GET through the proxy, {connections} connections, {seconds} s x {rounds} rounds per proxy after {warmup} s of warm-up, budgets of {limit}/1m (lease {Math.Max(1, limit / 20)} units), {Environment.ProcessorCount} cores"));
                var results = targets.ToDictionary(t => t.Name, _ => new List<Result>());
                foreach (var (_, proxy) in targets)
                {
                    await LoadAsync(proxy, originUrl, connections, TimeSpan.FromSeconds(warmup)); // warm-up (TLS, tiered JIT)
                }

                for (var round = 0; round < rounds; round++)
                {
                    for (var t = 0; t < targets.Count; t++)
                    {
                        var (name, proxy) = targets[(t + round) % targets.Count]; // each round starts with another proxy
                        results[name].Add(await LoadAsync(proxy, originUrl, connections, TimeSpan.FromSeconds(seconds)));
                    }
                }

                foreach (var (name, _) in targets)
                {
                    var median = results[name].OrderBy(r => r.P50Ms).ElementAt(results[name].Count / 2);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {name,-26} {median.Rps,8:F0} req/s   p50 {median.P50Ms,6:F2} ms   p99 {median.P99Ms,6:F2} ms   proxy CPU {median.CpuMsPerRequest,6:F3} ms/req   refused {median.Refused}"));
                }

                if (postgres is null)
                {
                    Console.WriteLine("  (PostgreSQL store not measured: --no-postgres or PostgreSQL not installed)");
                }
            }
            finally
            {
                foreach (var (_, proxy) in targets)
                {
                    await proxy.DisposeAsync();
                }

                if (postgres is not null)
                {
                    await postgres.DisposeAsync();
                }
            }

            return 0;
        }
        finally
        {
            try
            {
                dir.Delete(recursive: true);
            }
            catch (IOException)
            {
                // leave it in /tmp
            }
        }
    }

    private readonly record struct Result(double Rps, double P50Ms, double P99Ms, double CpuMsPerRequest, long Refused);

    private static async Task<Result> LoadAsync(ProxyRun proxy, string url, int connections, TimeSpan duration)
    {
        using var handler = proxy.Handler(connections);
        using var client = new HttpClient(handler, disposeHandler: false) { Timeout = TimeSpan.FromSeconds(30) };
        var samples = new ConcurrentBag<double[]>();
        long refused = 0;
        var cpuBefore = proxy.CpuTime();
        var clock = Stopwatch.StartNew();
        var stopAt = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Task.Run(async () =>
        {
            var local = new List<double>(8192);
            while (Stopwatch.GetTimestamp() < stopAt)
            {
                var start = Stopwatch.GetTimestamp();
                using var response = await client.GetAsync(url);
                await response.Content.ReadAsByteArrayAsync();
                local.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref refused);
                }
            }

            samples.Add([.. local]);
        })));
        var elapsed = clock.Elapsed;
        var cpu = proxy.CpuTime() - cpuBefore;
        var all = samples.SelectMany(s => s).Order().ToArray();
        return new Result(
            all.Length / elapsed.TotalSeconds,
            all.Length == 0 ? 0 : all[all.Length / 2],
            all.Length == 0 ? 0 : all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))],
            all.Length == 0 ? 0 : cpu.TotalMilliseconds / all.Length,
            refused);
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    private sealed class Origin(WebApplication app, int port) : IAsyncDisposable
    {
        public int Port { get; } = port;

        public async ValueTask DisposeAsync() => await app.DisposeAsync();
    }

    private static async Task<Origin> StartOriginAsync(X509Certificate2 certificate)
    {
        var port = FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.UseHttps(certificate)));
        var app = builder.Build();
        app.MapGet("/ok", () => Results.Text("ok"));
        await app.StartAsync();
        return new Origin(app, port);
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>One proxyguard process (started with <c>dotnet proxyguard.dll run</c>, killed by its own id on dispose).</summary>
    private sealed class ProxyRun : IAsyncDisposable
    {
        private readonly Process _process;

        private ProxyRun(Process process, string proxyUrl, string caPath)
        {
            _process = process;
            ProxyUrl = proxyUrl;
            CaPath = caPath;
        }

        public string ProxyUrl { get; }

        public string CaPath { get; }

        public static async Task<ProxyRun> StartAsync(string dll, string directory, string policy, string[] extra)
        {
            Directory.CreateDirectory(directory);
            var policyPath = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(policyPath, policy);
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
            foreach (var arg in new[] { dll, "run", "--policy", policyPath, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ca-dir", Path.Combine(directory, "ca"), "--data-dir", Path.Combine(directory, "data") }.Concat(extra))
            {
                psi.ArgumentList.Add(arg);
            }

            psi.Environment["PROXYGUARD_ADMIN_TOKEN"] = "bench-admin-token-0123456789abcdef";
            psi.Environment["PROXYGUARD_LOG_LEVEL"] = "Warning";
            psi.Environment.Remove("HTTP_PROXY");
            psi.Environment.Remove("HTTPS_PROXY");
            var process = new Process { StartInfo = psi };
            var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var output = new ConcurrentQueue<string>();
            string? url = null;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    ready.TrySetException(new InvalidOperationException("proxyguard exited:\n" + string.Join('\n', output)));
                    return;
                }

                output.Enqueue(e.Data);
                if (e.Data.StartsWith("proxyguard: proxy listening on ", StringComparison.Ordinal))
                {
                    url = e.Data["proxyguard: proxy listening on ".Length..];
                }
                else if (e.Data.StartsWith("proxyguard: for a sandbox", StringComparison.Ordinal) && url is not null)
                {
                    ready.TrySetResult(url);
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    output.Enqueue(e.Data);
                }
            };
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                var proxyUrl = await ready.Task.WaitAsync(TimeSpan.FromSeconds(90));
                return new ProxyRun(process, proxyUrl, Path.Combine(directory, "ca", "ca.pem"));
            }
            catch
            {
                process.Kill(entireProcessTree: true);
                process.Dispose();
                throw;
            }
        }

        public TimeSpan CpuTime()
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }

        public SocketsHttpHandler Handler(int connections)
        {
            var ca = X509CertificateLoader.LoadCertificateFromFile(CaPath);
            return new SocketsHttpHandler
            {
                Proxy = new WebProxy(ProxyUrl),
                UseProxy = true,
                MaxConnectionsPerServer = connections,
                SslOptions = new SslClientAuthenticationOptions
                {
                    RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                    {
                        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                        {
                            return false;
                        }

                        using var chain = new X509Chain();
                        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                        chain.ChainPolicy.CustomTrustStore.Add(ca);
                        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                        return chain.Build(leaf);
                    },
                },
            };
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }
    }
}
