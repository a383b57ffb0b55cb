using Microsoft.Extensions.Logging;

namespace ProxyGuard.Engine.Logging;

/// <summary>
/// Every log message of the engine, source-generated (no parameter arrays or boxing when a level is off). Values
/// that a sandbox shapes reach these only after the audit event factory sanitised them.
/// </summary>
internal static partial class EngineLog
{
    [LoggerMessage(Level = LogLevel.Error, Message = "the interception CA {Path} expired at {NotAfter}: intercepted TLS fails; create a new CA (proxyguard ca init --force) and redistribute it")]
    public static partial void CaExpired(ILogger logger, string path, string notAfter);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the interception CA {Path} expires at {NotAfter} (in {Days} days): create a new CA and redistribute it before then")]
    public static partial void CaExpiresSoon(ILogger logger, string path, string notAfter, int days);

    [LoggerMessage(Level = LogLevel.Information, Message = "the interception CA {Path} is valid until {NotAfter} ({Days} days)")]
    public static partial void CaValid(ILogger logger, string path, string notAfter, int days);

    [LoggerMessage(Level = LogLevel.Debug, Message = "connection {Id} ended: {Error}")]
    public static partial void ConnectionEnded(ILogger logger, string id, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "could not send the refusal: {Error}")]
    public static partial void RefusalNotSent(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "tunnel to {Host}:{Port} ended: {Error}")]
    public static partial void TunnelEnded(ILogger logger, string host, int port, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "forwarding to {Authority} failed: {Error} ({Detail})")]
    public static partial void ForwardFailed(ILogger logger, string authority, Yarp.ReverseProxy.Forwarder.ForwarderError error, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "audit store cannot record a {Decision} event: {Error}")]
    public static partial void AuditUnrecorded(ILogger logger, string decision, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "deny {Kind} {Method} {Host}:{Port}{Path} rule={Rule} reason={Reason} client={Client}")]
    public static partial void Denied(ILogger logger, string kind, string? method, string host, int port, string? path, string? rule, string? reason, string? client);

    [LoggerMessage(Level = LogLevel.Warning, Message = "secret {Name} is unavailable, requests that carry its placeholder are denied: {Reason}")]
    public static partial void SecretUnavailable(ILogger logger, string name, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "client {Id} cannot authenticate: {Reason}")]
    public static partial void ClientUnusable(ILogger logger, string id, string? reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "policy reloaded from {File} (sha256 {Sha})")]
    public static partial void PolicyReloaded(ILogger logger, string file, string sha);

    [LoggerMessage(Level = LogLevel.Information, Message = "reloading the policy {File} ({Trigger})")]
    public static partial void PolicyReloading(ILogger logger, string file, string trigger);

    [LoggerMessage(Level = LogLevel.Error, Message = "policy reload ({Trigger}) failed, keeping the last good policy")]
    public static partial void PolicyReloadFailed(ILogger logger, Exception exception, string trigger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the policy file {File} kept changing for {Seconds} s; not reloaded (it is reloaded when it next changes, or on SIGHUP)")]
    public static partial void PolicyNeverSettled(ILogger logger, string file, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "watching {Directory} for policy changes reported an error ({Error}); reloading")]
    public static partial void WatcherError(ILogger logger, string directory, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot watch {File} for changes ({Error}); reload with SIGHUP or POST /api/policy/reload")]
    public static partial void WatchUnavailable(ILogger logger, string file, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "policy reload rejected, keeping the last good policy: {Error}")]
    public static partial void PolicyRejected(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "budgets back to {InUseMiB} MiB after a peak of {PeakMiB} MiB: heap compacted and returned to the system ({Milliseconds} ms)")]
    public static partial void MemoryTrimmed(ILogger logger, long inUseMiB, long peakMiB, long milliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "grant {Id} created by {By}: client {Client} may reach {Host} until {Until}")]
    public static partial void GrantCreated(ILogger logger, string id, string client, string host, string until, string by);

    [LoggerMessage(Level = LogLevel.Information, Message = "grant {Id} {Action} by {By}")]
    public static partial void GrantEnded(ILogger logger, string id, string action, string by);

    [LoggerMessage(Level = LogLevel.Error, Message = "could not end expired grants: {Error}")]
    public static partial void GrantSweepFailed(ILogger logger, string error);
}
