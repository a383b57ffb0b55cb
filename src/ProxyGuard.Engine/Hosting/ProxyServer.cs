using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ProxyGuard.Audit;
using ProxyGuard.Audit.Central;
using ProxyGuard.Engine.Admin;
using ProxyGuard.Engine.Budgets;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Framing;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Network;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Secrets;
using Yarp.ReverseProxy.Forwarder;

namespace ProxyGuard.Engine.Hosting;

/// <summary>
/// Builds and runs the proxy: Kestrel with the proxy listener (CONNECT middleware → TLS
/// interception → HTTP) and the admin listener, the policy runtime, the certificate cache, the
/// upstream client and the audit store.
/// </summary>
internal sealed class ProxyServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly WebApplication _adminApp;
    private readonly ListenOptions? _proxyListen;
    private readonly ListenOptions? _adminListen;
    private readonly ListenAddress _proxyAddress;
    private readonly ListenAddress _adminAddress;
    private readonly EventStore _store;
    private readonly SecretResolver _secrets;
    private readonly HttpMessageInvoker _client;
    private readonly CertificateAuthority _ca;
    private readonly MemoryTrimmer _trimmer;
    private readonly Telemetry.OtlpExport? _otlp;

    private ProxyServer(
        WebApplication app, WebApplication adminApp, ProxyServices services, ListenOptions? proxyListen, ListenOptions? adminListen,
        ListenAddress proxyAddress, ListenAddress adminAddress, EventStore store, SecretResolver secrets,
        HttpMessageInvoker client, CertificateAuthority ca, bool caCreated, AdminToken adminToken, MemoryTrimmer trimmer, Telemetry.OtlpExport? otlp)
    {
        _trimmer = trimmer;
        _otlp = otlp;
        _app = app;
        _adminApp = adminApp;
        Services = services;
        _proxyListen = proxyListen;
        _adminListen = adminListen;
        _proxyAddress = proxyAddress;
        _adminAddress = adminAddress;
        _store = store;
        _secrets = secrets;
        _client = client;
        _ca = ca;
        CaCreated = caCreated;
        AdminTokenSource = adminToken.Source;
    }

    public ProxyServices Services { get; }

    public string CaCertificatePath => _ca.CertificatePath;

    public bool CaCreated { get; }

    public string AdminTokenSource { get; }

    /// <summary>The proxy URL clients use (after start, with the bound port).</summary>
    public string ProxyUrl => _proxyAddress.UnixPath is not null ? "unix:" + _proxyAddress.UnixPath : "http://" + Bound(_proxyListen, _proxyAddress);

    public string AdminUrl => _adminAddress.UnixPath is not null ? "unix:" + _adminAddress.UnixPath : "http://" + Bound(_adminListen, _adminAddress);

    // Every disposable built here is owned by the returned server and disposed in DisposeAsync; a start that fails
    // half-way ends the process (the CLI reports the one-line reason), so nothing outlives it.
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "Ownership passes to the returned ProxyServer.")]
    public static async Task<ProxyServer> CreateAsync(ProxyServerOptions options, CancellationToken ct = default)
    {
        var proxyAddress = ListenAddress.Parse(options.Listen, "--listen");
        var adminAddress = ListenAddress.Parse(options.Admin, "--admin");
        var limits = options.Limits.WithEnvironment(Environment.GetEnvironmentVariable);

        var refusals = new KestrelRefusalRecorder();
        var builder = NewBuilder(options, refusals);
        builder.Services.AddHttpForwarder();

        // Build the parts that do not depend on the host first, so a bad CA or policy fails fast.
        using var bootstrapLoggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
        var ca = CertificateAuthority.LoadOrCreate(options.CaDirectory, out var caCreated);
        Directory.CreateDirectory(options.DataDirectory);
        var installationKey = SnapshotBuilder.LoadInstallationKey(options.DataDirectory);
        var store = EventStore.Open(options.DataDirectory, options.Events);
        var centralSettings = options.Central?.Invoke(options.DataDirectory);
        var central = centralSettings is not null ? CentralStore.Create(centralSettings, store) : null;
        var centralConnection = centralSettings?.ConnectionString;
        var secrets = new SecretResolver(SecretResolverOptions.FromEnvironment());
        var metrics = new ProxyMetrics();
        var budgets = new ProcessBudgets(limits);
        metrics.TrackBudgets(budgets);

        // Strict HTTP/1.x line endings: a bare LF is not a line terminator (an upstream might read
        // "X-A: a\nContent-Length: 5" as one header where Kestrel's lenient default reads two).
        AppContext.SetSwitch("Microsoft.AspNetCore.Server.Kestrel.DisableHttp1LineFeedTerminators", true);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = null;
            k.Limits.MaxRequestHeadersTotalSize = limits.MaxRequestHeadersTotalSize;
            k.Limits.MaxRequestLineSize = limits.MaxRequestLineSize;
            k.Limits.KeepAliveTimeout = limits.IdleTimeout;
            k.Limits.RequestHeadersTimeout = limits.RequestHeadersTimeout;
            k.Limits.Http2.MaxStreamsPerConnection = limits.MaxStreamsPerConnection;
        });

        var app = builder.Build();
        var adminBuilder = NewBuilder(options, null);
        adminBuilder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        var adminApp = adminBuilder.Build();
        var loggerFactory = app.Services.GetRequiredService<ILoggerFactory>();
        var runtime = new PolicyRuntime(options.PolicyPath, secrets, installationKey, metrics, loggerFactory.CreateLogger("ProxyGuard.Policy"), budgets.Decoding);
        try
        {
            await runtime.LoadInitialAsync(options.ValidatedPolicy, ct);
            if (central is not null)
            {
                try
                {
                    await central.CheckRegistrationAsync(TimeSpan.FromSeconds(10), ct);
                }
                catch (ReplicaConflictException conflict)
                {
                    throw new EventStoreException(conflict.Message, conflict);
                }
            }
        }
        catch
        {
            if (central is not null)
            {
                await central.DisposeAsync();
            }

            await store.DisposeAsync();
            secrets.Dispose();
            ca.Dispose();
            budgets.Dispose();
            throw;
        }

        var connector = new UpstreamConnector(options.Resolve, () => runtime.Current.Policy.Network.AllowDestinations, limits.UpstreamConnectTimeout);
        var trust = new UpstreamTrust(() => runtime.Current.UpstreamRoots);
        var upstreamConnections = new ConnectionCounter(limits.MaxUpstreamConnections);
        var client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            ConnectTimeout = limits.UpstreamConnectTimeout,
            ActivityHeadersPropagator = DistributedContextPropagator.CreateNoOutputPropagator(),
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = trust.Validate },
            ConnectCallback = async (context, token) =>
            {
                // A process-wide bound on open upstream connections (R7-6): past it the request is refused
                // (503 over-capacity) instead of opening one more; the slot is given back when the connection closes.
                var slot = upstreamConnections.TryAcquire("upstream")
                    ?? throw new DestinationBlockedException(Reasons.OverCapacity.Name,
                        $"the proxy's bound on open upstream connections ({limits.MaxUpstreamConnections}) is reached; retry shortly");
                try
                {
                    var host = context.DnsEndPoint.Host.Trim('[', ']');
                    var socket = await connector.ConnectAsync(host, context.DnsEndPoint.Port, token);
                    return new SlotNetworkStream(socket, slot);
                }
                catch
                {
                    slot.Dispose();
                    throw;
                }
            },
        });

        var audit = new AuditSink(store, limits, loggerFactory.CreateLogger("ProxyGuard.Audit")) { Central = central };
        var certificates = new LeafCertificateCache(ca, limits.CertificateCacheSize, loggerFactory.CreateLogger("ProxyGuard.Certificates"));
        var ledger = new BudgetLedger(limits.MaxBudgetKeys);
        BudgetSync? budgetSync = null;
        if (options.BudgetStore is { Length: > 0 } budgetStore)
        {
            try
            {
                budgetSync = await BudgetSync.StartAsync(budgetStore, ledger, options.BudgetSyncInterval, loggerFactory.CreateLogger("ProxyGuard.Budgets"), ct);
            }
            catch
            {
                await store.DisposeAsync();
                secrets.Dispose();
                ca.Dispose();
                budgets.Dispose();
                client.Dispose();
                runtime.Dispose();
                throw;
            }
        }

        metrics.TrackUsageBudgets(ledger, budgetSync);
        var grants = Grants.GrantRegistry.Open(
            options.DataDirectory, audit, loggerFactory.CreateLogger("ProxyGuard.Grants"), limits.MaxGrants, centralConnectionString: centralConnection);
        var services = new ProxyServices(runtime, certificates, connector, audit, metrics, limits, loggerFactory)
        {
            Refusals = refusals, Budgets = budgets, Grants = grants, Ledger = ledger, BudgetSync = budgetSync,
            DenialCertificates = options.ReadableDenials ? new DenialCertificates(ca) : null,
        };
        var trimmer = new MemoryTrimmer(budgets, loggerFactory.CreateLogger("ProxyGuard.Memory"));
        refusals.Attach(services);
        var adminToken = AdminToken.Load(options.AdminToken, options.DataDirectory);
        var otlp = options.OtlpEndpoint is { } otlpEndpoint ? new Telemetry.OtlpExport(otlpEndpoint, () => ScrapeMetrics(services)) : null;
        if (otlp is not null)
        {
            audit.Recorded = e => otlp.Offer(e);
        }

        metrics.TrackOtlp(otlp);

        ListenOptions? proxyListen = null;
        ListenOptions? adminListen = null;
        var kestrel = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<KestrelServerOptions>>().Value;
        var adminKestrel = adminApp.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<KestrelServerOptions>>().Value;
        void ConfigureProxy(ListenOptions listen)
        {
            proxyListen = listen;
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            ConnectionDelegate? plain = null;
            listen.Use(next => new ConnectMiddleware(next, () => plain!, services).OnConnectionAsync);
            listen.UseHttps(new TlsHandshakeCallbackOptions
            {
                HandshakeTimeout = limits.TlsHandshakeTimeout,
                OnConnection = context => ValueTask.FromResult(TlsOptionsFor(context, services)),
            });
            listen.Use(next =>
            {
                // Both paths into Kestrel's HTTP layer (plain connections and decrypted tunnels) pass the framing guard.
                plain = new FramingGuard(
                    next,
                    limits.MaxRequestLineSize + limits.MaxRequestHeadersTotalSize + 1024,
                    kestrel.Limits.Http2.HeaderTableSize,
                    kestrel.Limits.Http2.MaxFrameSize,
                    limits.MaxRequestHeadersTotalSize + (16 * 1024)).OnConnectionAsync;
                return plain;
            });
        }

        void ConfigureAdmin(ListenOptions listen)
        {
            adminListen = listen;
            listen.Protocols = HttpProtocols.Http1;
        }

        Listen(kestrel, proxyAddress, ConfigureProxy);
        Listen(adminKestrel, adminAddress, ConfigureAdmin);

        // Two pipelines: the proxy listener runs the request delegate alone (no routing on the hot path); the admin
        // API is its own application on its own listener.
        var handler = new ProxyRequestDelegate(services, app.Services.GetRequiredService<IHttpForwarder>(), client);
        ((IApplicationBuilder)app).Run(handler.InvokeAsync);
        AdminEndpoints.Map(adminApp, services, adminToken);
        HealthEndpoints.Map(adminApp, services);
        app.Lifetime.ApplicationStopping.Register(services.Serving.MarkStopping);

        if (options.WatchPolicyFile)
        {
            runtime.WatchFile();
        }

        return new ProxyServer(app, adminApp, services, proxyListen, adminListen, proxyAddress, adminAddress, store, secrets, client, ca, caCreated, adminToken, trimmer, otlp);
    }

    /// <summary>The metrics in the Prometheus text format, as <c>GET /metrics</c> serves them (for the OTLP bridge).</summary>
    private static string ScrapeMetrics(ProxyServices services)
    {
        AdminEndpoints.UpdateGauges(services);
        using var buffer = new MemoryStream();
        services.Metrics.Registry.CollectAndExportAsTextAsync(buffer).GetAwaiter().GetResult();
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>A slim host with ProxyGuard's logging; the proxy's also records Kestrel's parser refusals.</summary>
    private static WebApplicationBuilder NewBuilder(ProxyServerOptions options, KestrelRefusalRecorder? refusals)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "proxyguard",
            ContentRootPath = Directory.GetCurrentDirectory(),
        });
        builder.Logging.ClearProviders();
        if (options.JsonLogs)
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
        }

        builder.Logging.SetMinimumLevel(Environment.GetEnvironmentVariable("PROXYGUARD_LOG_LEVEL") is { } level && Enum.TryParse<LogLevel>(level, true, out var parsed) ? parsed : LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical); // start failures: one line from the CLI
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);

        // Hosting's request logger writes only request start/finish lines (Information), which the audit events
        // replace; while it is enabled at any level, hosting starts an Activity (and a log scope) for every request,
        // and the upstream client a child Activity: allocations on every request for nothing that is read.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);

        // YARP logs every failed upstream at Warning with a stack trace; those failures are already
        // in the audit event (reason upstream-*), the upstream-errors metric and our Debug log.
        builder.Logging.AddFilter("Yarp.ReverseProxy.Forwarder.HttpForwarder", LogLevel.Error);
        if (refusals is not null)
        {
            builder.Logging.AddProvider(refusals);
            builder.Logging.AddFilter<KestrelRefusalRecorder>(KestrelRefusalRecorder.Category, LogLevel.Debug);
        }

        return builder;
    }

    public async Task StartAsync(CancellationToken ct = default)
    {
        await _app.StartAsync(ct);
        Services.Serving.MarkListening();
        await _adminApp.StartAsync(ct);
        Services.Audit.Central?.Start();
        var self = new List<IPEndPoint>();
        if (_proxyListen?.IPEndPoint is { } p)
        {
            self.Add(p);
        }

        if (_adminListen?.IPEndPoint is { } a)
        {
            self.Add(a);
        }

        Services.Connector.SetSelfEndpoints(self);
    }

    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    public async Task StopAsync(CancellationToken ct = default)
    {
        Services.Serving.MarkStopping();
        await _app.StopAsync(ct);
        await _adminApp.StopAsync(ct);
        await _store.FlushAsync(ct);
        if (Services.Audit.Central is { } central)
        {
            // Ship what is committed before exiting when PostgreSQL answers within a few seconds; otherwise it stays
            // in the outbox and ships at the next start.
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(TimeSpan.FromSeconds(5));
            await central.TryShipRemainingAsync(bounded.Token);
        }

        if (Services.BudgetSync is { } sync)
        {
            await sync.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await _adminApp.DisposeAsync();
        if (Services.Audit.Central is { } central)
        {
            await central.DisposeAsync();
        }

        await _store.DisposeAsync();
        _otlp?.Dispose();
        if (Services.BudgetSync is { } sync)
        {
            await sync.DisposeAsync();
        }

        _client.Dispose();
        _secrets.Dispose();
        Services.Runtime.Dispose();
        Services.Certificates.Dispose();
        _ca.Dispose();
        _trimmer.Dispose();
        Services.Budgets.Dispose();
        Services.Grants?.Dispose();
        Services.DenialCertificates?.Dispose();
    }

    private static SslServerAuthenticationOptions TlsOptionsFor(TlsHandshakeCallbackContext context, ProxyServices services)
    {
        var feature = context.Connection.Features.Get<ProxyConnectionFeature>();
        var tunnel = feature?.Tunnel ?? throw new AuthenticationException("TLS without a CONNECT tunnel");
        if (tunnel.Refusal is not null)
        {
            // A refused CONNECT answered inside TLS: its own bounded leaves, HTTP/1.1 only (one response, then close).
            return new SslServerAuthenticationOptions
            {
                ServerCertificateContext = services.DenialCertificates?.Get(tunnel.Host) ?? throw new AuthenticationException("readable denials are off"),
                ApplicationProtocols = [SslApplicationProtocol.Http11],
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ClientCertificateRequired = false,
            };
        }

        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = services.Certificates.Get(tunnel.Host),
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ClientCertificateRequired = false,
        };
    }

    private static void Listen(KestrelServerOptions kestrel, ListenAddress address, Action<ListenOptions> configure)
    {
        if (address.UnixPath is not null)
        {
            if (File.Exists(address.UnixPath))
            {
                File.Delete(address.UnixPath);
            }

            kestrel.ListenUnixSocket(address.UnixPath, configure);
        }
        else
        {
            kestrel.Listen(address.EndPoint!, configure);
        }
    }

    private static string Bound(ListenOptions? listen, ListenAddress address)
    {
        var endpoint = listen?.IPEndPoint ?? address.EndPoint!;
        return endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]:{endpoint.Port}" : endpoint.ToString();
    }
}
