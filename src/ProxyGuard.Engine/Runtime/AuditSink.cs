using Microsoft.Extensions.Logging;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Where the engine records decisions. Allow events are queued without waiting (a full queue drops
/// and counts them); deny and audit-deny events wait for room and are never dropped.
/// </summary>
internal sealed class AuditSink
{
    private static readonly Action<ILogger, string, string, string, int, string?, Exception?> LogDecision =
        LoggerMessage.Define<string, string, string, int, string?>(
            LogLevel.Debug, new EventId(1, "Decision"), "{Decision} {Kind} {Host}:{Port} rule={Rule}");

    private readonly EventStore _store;
    private readonly ProxyLimits _limits;
    private readonly ILogger _logger;

    public AuditSink(EventStore store, ProxyLimits limits, ILogger logger)
    {
        _store = store;
        _limits = limits;
        _logger = logger;
    }

    public EventStore Store => _store;

    /// <summary>Called with each event the store accepted (the OTLP export's non-blocking offer; null when off).</summary>
    public Action<AuditEvent>? Recorded { get; set; }

    /// <summary>The central event store, when configured: the admin API reads events from it.</summary>
    public ProxyGuard.Audit.Central.CentralStore? Central { get; init; }

    /// <summary>False when the store cannot take events: the engine then fails requests closed.</summary>
    public bool Healthy => _store.Healthy;

    /// <summary>A queue slot for the event of a request about to be forwarded; null: nothing may be forwarded now.</summary>
    public EventReservation? TryReserve() => _store.TryReserve();

    /// <summary>Records <paramref name="e"/> in the slot reserved for it before the request was forwarded.</summary>
    public bool Record(AuditEvent e, EventReservation reservation)
    {
        Log(e);
        reservation.Write(e);
        Recorded?.Invoke(e);
        return true;
    }

    public async ValueTask<bool> RecordAsync(AuditEvent e)
    {
        Log(e);
        if (e.Decision == "allow")
        {
            var queued = _store.TryWrite(e);
            if (queued)
            {
                Recorded?.Invoke(e);
            }

            return queued;
        }

        try
        {
            using var wait = new CancellationTokenSource(_limits.EventQueueWait);
            await _store.WriteAsync(e, wait.Token);
            Recorded?.Invoke(e);
            return true;
        }
        catch (Exception ex) when (ex is EventStoreException or OperationCanceledException)
        {
            EngineLog.AuditUnrecorded(_logger, e.Decision, ex.Message);
            return false;
        }
    }

    /// <summary>Records an event that must not be dropped whatever its decision (grant events): waits for room, bounded.</summary>
    public async ValueTask<bool> RecordRequiredAsync(AuditEvent e)
    {
        try
        {
            using var wait = new CancellationTokenSource(_limits.EventQueueWait);
            await _store.WriteAsync(e, wait.Token);
            return true;
        }
        catch (Exception ex) when (ex is EventStoreException or OperationCanceledException)
        {
            EngineLog.AuditUnrecorded(_logger, e.Kind, ex.Message);
            return false;
        }
    }

    private void Log(AuditEvent e)
    {
        // Allow events are the hot path: with Debug off (the default) they cost one level check,
        // no argument array and no boxing.
        if (e.Decision != "deny")
        {
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                LogDecision(_logger, e.Decision, e.Kind, e.Host, e.Port, e.Rule, null);
            }
        }
        else if (_logger.IsEnabled(LogLevel.Information))
        {
            EngineLog.Denied(_logger, e.Kind, e.Method, e.Host, e.Port, e.Path, e.Rule, e.Reason, e.Client);
        }
    }
}
