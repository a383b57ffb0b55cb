using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Auditing;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Hosting;

/// <summary>
/// Turns requests that Kestrel's parser refuses by itself (400/413/414/431 before the proxy pipeline
/// runs: conflicting framing, bad chunks, control characters, oversized heads) into audit events
/// with reason <c>bad-request</c>. Kestrel reports them only as log entries of the
/// <c>Microsoft.AspNetCore.Server.Kestrel.BadRequests</c> category; this provider listens to that
/// category alone and never records Kestrel's message (it can quote the request).
/// </summary>
internal sealed class KestrelRefusalRecorder : ILoggerProvider
{
    public const string Category = "Microsoft.AspNetCore.Server.Kestrel.BadRequests";

    private readonly ConcurrentDictionary<string, ProxyConnectionFeature> _connections = new(StringComparer.Ordinal);
    private ProxyServices? _services;

    /// <summary>Set once the engine's services exist (the logging pipeline is built before them).</summary>
    public void Attach(ProxyServices services) => _services = services;

    public void Register(string connectionId, ProxyConnectionFeature feature) => _connections[connectionId] = feature;

    public void Unregister(string connectionId) => _connections.TryRemove(connectionId, out _);

    public ILogger CreateLogger(string categoryName) =>
        categoryName == Category ? new RefusalLogger(this) : NullLoggerInstance;

    public void Dispose() => _connections.Clear();

    private static readonly ILogger NullLoggerInstance = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    private void Record(string connectionId)
    {
        var services = _services;
        if (services is null || !_connections.TryGetValue(connectionId, out var feature))
        {
            return; // the admin listener, or before start
        }

        var tunnel = feature.Tunnel;
        var decision = Decision.Enforce("protocol", Reasons.BadRequest);
        services.Metrics.CountRequest(decision);
        var snapshot = services.Runtime.Current;
        var e = tunnel is null
            ? AuditEventFactory.Connect(snapshot, feature.RemoteAddress, null, string.Empty, 0, decision, 400, 0, AuditKinds.Request)
            : AuditEventFactory.Tunnel(snapshot, feature, tunnel, decision, 400, 0);
        _ = services.Audit.RecordAsync(e with { Kind = AuditKinds.Request, Method = null, Scheme = tunnel is null ? "http" : "https" }).AsTask();
    }

    private sealed class RefusalLogger(KestrelRefusalRecorder owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Name != "ConnectionBadRequest" || state is not IReadOnlyList<KeyValuePair<string, object?>> fields)
            {
                return;
            }

            foreach (var (key, value) in fields)
            {
                if (key == "ConnectionId" && value is string id)
                {
                    owner.Record(id);
                    return;
                }
            }
        }
    }
}
