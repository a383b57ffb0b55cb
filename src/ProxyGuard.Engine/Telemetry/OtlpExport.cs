using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using ProxyGuard.Audit;

namespace ProxyGuard.Engine.Telemetry;

/// <summary>
/// Optional OTLP export (off unless an endpoint is configured): audit events as OTLP log records and the proxy's
/// metrics, with the OpenTelemetry .NET SDK. The request path only offers an already-redacted event to a bounded
/// queue (<see cref="Offer"/> never waits; a full queue drops and counts). One pump task feeds the SDK's batch
/// processor and never lets its queue overflow, so every loss is counted here: <c>queue-full</c> (the pump fell behind)
/// or <c>export-failed</c> (the collector refused or could not be reached within the exporter's timeout).
/// </summary>
internal sealed class OtlpExport : IDisposable
{
    /// <summary>Events waiting for the pump (the bounded queue on the request side).</summary>
    public const int QueueCapacity = 4096;

    /// <summary>The SDK batch processor's queue; the pump keeps at most this many records in it.</summary>
    private const int SdkQueue = 2048;

    private const int BatchSize = 512;

    private readonly Channel<AuditEvent> _queue = Channel.CreateBounded<AuditEvent>(
        new BoundedChannelOptions(QueueCapacity) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true });

    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly CountingExporter _exporter;
    private readonly BatchLogRecordExportProcessor _processor;
    private readonly MeterProvider _meters;
    private readonly PrometheusBridge _bridge;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;
    private long _submitted;
    private long _queueFull;

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "The exporter, processor, providers and bridge are owned by this instance and disposed in Dispose.")]
    public OtlpExport(Uri endpoint, Func<string> scrapeMetrics)
    {
        var resource = ResourceBuilder.CreateDefault().AddService("proxyguard");

        // Logs: the SDK reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _PROTOCOL; the endpoint is ours.
        var logOptions = new OtlpExporterOptions();
        Configure(logOptions, endpoint, "v1/logs");
        _exporter = new CountingExporter(new OtlpLogExporter(logOptions));
        _processor = new BatchLogRecordExportProcessor(_exporter, SdkQueue, scheduledDelayMilliseconds: 1000, exporterTimeoutMilliseconds: logOptions.TimeoutMilliseconds, maxExportBatchSize: BatchSize);
        _loggers = LoggerFactory.Create(b => b.AddOpenTelemetry(o =>
        {
            o.SetResourceBuilder(resource);
            o.IncludeFormattedMessage = true;
            o.AddProcessor(_processor);
        }));
        _logger = _loggers.CreateLogger("ProxyGuard.AuditEvents");

        // Metrics: the Prometheus registry, bridged; OTEL_METRIC_EXPORT_INTERVAL sets the period (SDK default 60 s).
        _bridge = new PrometheusBridge(scrapeMetrics);
        _meters = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(PrometheusBridge.MeterName)
            .AddOtlpExporter(o => Configure(o, endpoint, "v1/metrics"))
            .Build();

        _pump = Task.Run(PumpAsync);
    }

    /// <summary>Events handed to the exporter (queued, not yet known to be delivered).</summary>
    public long Submitted => Volatile.Read(ref _submitted);

    /// <summary>Events the collector accepted.</summary>
    public long Exported => _exporter.Exported;

    /// <summary>Events dropped because the queue was full.</summary>
    public long DroppedQueueFull => Volatile.Read(ref _queueFull);

    /// <summary>Events lost in a failed export.</summary>
    public long DroppedExportFailed => _exporter.Failed;

    /// <summary>Offers a recorded (redacted) event; never waits. False when it was dropped (counted).</summary>
    public bool Offer(AuditEvent e)
    {
        if (_queue.Writer.TryWrite(e))
        {
            return true;
        }

        Interlocked.Increment(ref _queueFull);
        return false;
    }

    /// <summary>
    /// Reads the URL given to <c>--otlp-endpoint</c> / <c>PROXYGUARD_OTLP_ENDPOINT</c>: an absolute http(s) URL, the
    /// collector's base (the signal paths <c>/v1/logs</c> and <c>/v1/metrics</c> are added for http/protobuf).
    /// </summary>
    public static Uri ParseEndpoint(string value, string option)
    {
        if (!Uri.TryCreate(value.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            throw new ArgumentException($"{option}: expected the collector's base URL such as http://collector:4318, got '{value}'");
        }

        return uri;
    }

    private static void Configure(OtlpExporterOptions options, Uri endpoint, string signalPath)
    {
        // http/protobuf unless OTEL_EXPORTER_OTLP_PROTOCOL asks for grpc (the SDK's own default is grpc).
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_PROTOCOL")))
        {
            options.Protocol = OtlpExportProtocol.HttpProtobuf;
        }

        options.Endpoint = options.Protocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/" + signalPath)
            : endpoint;

        // Straight to the collector: never through a proxy from the environment (possibly this one).
        var timeout = TimeSpan.FromMilliseconds(options.TimeoutMilliseconds);
        options.HttpClientFactory = () => NewClient(timeout);
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "The handler is owned by the returned client.")]
    private static HttpClient NewClient(TimeSpan timeout) =>
        new(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = timeout }) { Timeout = timeout };

    private async Task PumpAsync()
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stop.Token))
            {
                while (reader.TryRead(out var e))
                {
                    // Never overflow the SDK's queue (it would drop without telling): wait for exports to make room.
                    while (Volatile.Read(ref _submitted) - _exporter.Handled >= SdkQueue)
                    {
                        await Task.Delay(20, _stop.Token);
                    }

                    Emit(e);
                    Interlocked.Increment(ref _submitted);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private void Emit(AuditEvent e)
    {
        var state = new List<KeyValuePair<string, object?>>(20)
        {
            new("proxyguard.time", e.Time.ToString("O", CultureInfo.InvariantCulture)),
            new("proxyguard.kind", EventText.Clean(e.Kind)),
            new("proxyguard.decision", EventText.Clean(e.Decision)),
            new("proxyguard.host", EventText.Clean(e.Host)),
            new("proxyguard.port", (long)e.Port),
        };
        Add(state, "proxyguard.client", e.Client);
        Add(state, "proxyguard.client_address", e.ClientAddress);
        Add(state, "proxyguard.method", e.Method);
        Add(state, "proxyguard.scheme", e.Scheme);
        Add(state, "proxyguard.path", e.Path);
        Add(state, "proxyguard.rule", e.Rule);
        Add(state, "proxyguard.reason", e.Reason);
        if (e.Status is { } status)
        {
            state.Add(new("proxyguard.status", (long)status));
        }

        state.Add(new("proxyguard.request_bytes", e.RequestBytes));
        state.Add(new("proxyguard.response_bytes", e.ResponseBytes));
        state.Add(new("proxyguard.duration_ms", e.DurationMs));
        if (e.Findings.Count > 0)
        {
            state.Add(new("proxyguard.findings", e.Findings.Select(f => EventText.Clean(f.Detector)).ToArray()));
        }

        if (e.SecretsInjected.Count > 0)
        {
            state.Add(new("proxyguard.secrets_injected", e.SecretsInjected.Select(EventText.Clean).ToArray()));
        }

        var target = $"{EventText.Clean(e.Method)} {EventText.Clean(e.Host)}:{e.Port.ToString(CultureInfo.InvariantCulture)}{EventText.Clean(e.Path)}";
        var level = e.Decision == AuditDecisions.Allow ? LogLevel.Information : LogLevel.Warning;
        _logger.Log(level, new EventId(1, "audit"), state, null, (_, _) => $"{e.Decision} {e.Kind} {target} {e.Reason}");
    }

    private static void Add(List<KeyValuePair<string, object?>> state, string key, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            state.Add(new(key, EventText.Clean(value)));
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _ = _pump.Wait(TimeSpan.FromSeconds(2));
        _stop.Cancel();
        _processor.Shutdown(2000);
        _loggers.Dispose();
        _meters.Dispose();
        _bridge.Dispose();
        _stop.Dispose();
    }

    /// <summary>Counts what the OTLP exporter was handed and whether each batch was accepted.</summary>
    private sealed class CountingExporter : BaseExporter<LogRecord>
    {
        private readonly OtlpLogExporter _inner;
        private long _exported;
        private long _failed;
        private bool _parentSet;

        public CountingExporter(OtlpLogExporter inner)
        {
            _inner = inner;
        }

        public long Exported => Volatile.Read(ref _exported);

        public long Failed => Volatile.Read(ref _failed);

        public long Handled => Exported + Failed;

        public override ExportResult Export(in Batch<LogRecord> batch)
        {
            if (!_parentSet)
            {
                // The OTLP exporter takes its resource (service.name) from its provider, which is set on the exporter the
                // processor holds (this one); hand it on.
                // Its setter is internal to the SDK: if a later SDK changes that, the records go without the resource.
                try
                {
                    typeof(BaseExporter<LogRecord>).GetProperty(nameof(ParentProvider))?.SetValue(_inner, ParentProvider);
                }
                catch (Exception ex) when (ex is ArgumentException or MemberAccessException or System.Reflection.TargetInvocationException)
                {
                    // Exported without service.name.
                }

                _parentSet = true;
            }

            ExportResult result;
            try
            {
                result = _inner.Export(batch);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or InvalidOperationException)
            {
                result = ExportResult.Failure;
            }

            Interlocked.Add(ref result == ExportResult.Success ? ref _exported : ref _failed, batch.Count);
            return result;
        }

        protected override bool OnForceFlush(int timeoutMilliseconds) => _inner.ForceFlush(timeoutMilliseconds);

        protected override bool OnShutdown(int timeoutMilliseconds) => _inner.Shutdown(timeoutMilliseconds);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
