using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using ProxyGuard.Engine.Auditing;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Network;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Connect;

/// <summary>
/// First stage of every proxy-listener connection, before Kestrel's TLS and HTTP layers: it reads a
/// <c>CONNECT</c> head (bounded in size and time), decides it, and either hands the connection on to
/// TLS interception, runs a pass-through/TCP tunnel, or refuses it. Anything else is a plain-HTTP
/// proxy connection and goes straight to Kestrel's HTTP layer (skipping TLS).
/// </summary>
internal sealed class ConnectMiddleware
{
    private readonly ConnectionDelegate _next;
    private readonly Func<ConnectionDelegate> _plainHttp;
    private readonly ProxyServices _services;
    private readonly ILogger _logger;

    public ConnectMiddleware(ConnectionDelegate next, Func<ConnectionDelegate> plainHttp, ProxyServices services)
    {
        _next = next;
        _plainHttp = plainHttp;
        _services = services;
        _logger = services.LoggerFactory.CreateLogger<ConnectMiddleware>();
    }

    public async Task OnConnectionAsync(ConnectionContext connection)
    {
        var remote = (connection.RemoteEndPoint as IPEndPoint)?.Address;
        var feature = new ProxyConnectionFeature(remote);
        connection.Features.Set(feature);
        _services.Refusals?.Register(connection.ConnectionId, feature);
        _services.Metrics.ActiveConnections.Inc();
        try
        {
            // Every connection holds a slot of its source address from the first byte on, so
            // half-sent heads count against the limit too (a client id, once known, takes a second).
            using var addressSlot = _services.Connections.TryAcquire(AddressKey(feature));
            if (addressSlot is null)
            {
                await RefuseAsync(connection, TooManyConnections, null, null, 0, feature);
                return;
            }

            await HandleAsync(connection, feature);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            EngineLog.ConnectionEnded(_logger, connection.ConnectionId, ex.Message);
        }
        finally
        {
            _services.Refusals?.Unregister(connection.ConnectionId);
            _services.Metrics.ActiveConnections.Dec();
        }
    }

    private async Task HandleAsync(ConnectionContext connection, ProxyConnectionFeature feature)
    {
        var input = connection.Transport.Input;
        using var headTimeout = new CancellationTokenSource(_services.Limits.ConnectHeadTimeout);
        ReadResult result;
        try
        {
            result = await input.ReadAsync(headTimeout.Token);
        }
        catch (OperationCanceledException)
        {
            return; // no bytes in time: close
        }

        var buffer = result.Buffer;
        if (buffer.IsEmpty)
        {
            input.AdvanceTo(buffer.Start);
            return;
        }

        if (!StartsLikeConnect(buffer))
        {
            input.AdvanceTo(buffer.Start);
            await _plainHttp()(connection);
            return;
        }

        // Read the whole head, bounded.
        SequencePosition? end;
        while (true)
        {
            end = FindHeadEnd(buffer);
            if (end is not null)
            {
                break;
            }

            if (buffer.Length > _services.Limits.MaxConnectHeadBytes || result.IsCompleted)
            {
                input.AdvanceTo(buffer.End);
                await RefuseAsync(connection, Denial.Of(Reasons.ConnectHeadTooLarge, "limits",
                    "the CONNECT request head is too large or incomplete"), null, null, 0, feature);
                return;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            try
            {
                result = await input.ReadAsync(headTimeout.Token);
            }
            catch (OperationCanceledException)
            {
                return; // slow head: close (Kestrel's header timeout is not active yet)
            }

            buffer = result.Buffer;
        }

        var headBytes = buffer.Slice(0, end.Value);
        if (headBytes.Length > _services.Limits.MaxConnectHeadBytes)
        {
            input.AdvanceTo(buffer.End);
            await RefuseAsync(connection, Denial.Of(Reasons.ConnectHeadTooLarge, "limits",
                "the CONNECT request head is too large"), null, null, 0, feature);
            return;
        }

        var parsed = ConnectHead.TryParse(headBytes, out var head, out var parseError);
        input.AdvanceTo(end.Value);
        if (!parsed)
        {
            await RefuseAsync(connection, Denial.Of(Reasons.MalformedConnect, "protocol", parseError), null, null, 0, feature);
            return;
        }

        await HandleConnectAsync(connection, feature, head!);
    }

    private async Task HandleConnectAsync(ConnectionContext connection, ProxyConnectionFeature feature, ConnectHead head)
    {
        var started = Stopwatch.GetTimestamp();
        var snapshot = _services.Runtime.Current;
        if (_services.Identify(snapshot, head.ProxyAuthorization, feature.RemoteAddress, out var clientId) is { } unauthenticated)
        {
            await RefuseAsync(connection, unauthenticated, head.Host, null, head.Port, feature,
                unauthenticated.Decision.Reason == Reasons.AuthRequired ? "Proxy-Authenticate: Basic realm=\"proxyguard\"\r\n" : null);
            return;
        }

        if (!HostNormalizer.TryNormalize(head.Host, out var host, out var hostError))
        {
            await RefuseAsync(connection, Denial.Of(Reasons.BadHost, "protocol", $"the CONNECT host is invalid: {hostError}"),
                head.Host, clientId, head.Port, feature);
            return;
        }

        using var slot = clientId is null ? null : _services.Connections.TryAcquire("client:" + clientId);
        if (clientId is not null && slot is null)
        {
            await RefuseAsync(connection, TooManyConnections, host, clientId, head.Port, feature);
            return;
        }

        var hostFinding = ContentChecks.ScanHost(snapshot, host);
        if (hostFinding is not null && hostFinding.Decision.Verdict == Verdict.Deny)
        {
            await RefuseAsync(connection, hostFinding, host, clientId, head.Port, feature, hostCarriesCredential: true);
            return;
        }

        var decision = _services.Decide(snapshot, DecisionInput.Connect(clientId, host, head.Port));
        if (decision.Verdict == Verdict.Deny)
        {
            var denial = new Denial(decision, $"CONNECT to {host}:{head.Port} is not allowed by the policy")
            {
                GrantHint = Denial.GrantCommand(decision, clientId, host, head.Port, "https", null),
            };

            // Readable denials: a name the rules refused (it passed the host grammar and the credential scan above)
            // gets TLS with a leaf from the bounded denial cache and the refusal as the answer to its first request.
            if (_services.DenialCertificates is { } denialCertificates && denialCertificates.TryAdmit(host))
            {
                await ExplainInsideTlsAsync(connection, feature, denial, host, clientId, head.Port, started);
                return;
            }

            await RefuseAsync(connection, denial, host, clientId, head.Port, feature);
            return;
        }

        // The network guard, before any TLS: IP literals and pinned names are judged here (names
        // that need DNS are judged when dialled). No certificate is minted for a refused address.
        if (_services.Connector.CheckWithoutLookup(host, head.Port) is { } blocked)
        {
            await RefuseAsync(connection, Denial.Of(Reasons.Find(blocked) ?? Reasons.PrivateDestination, "network", blocked == "self"
                    ? $"{host}:{head.Port} is ProxyGuard itself"
                    : $"{host} is a private or special-purpose address; allow it with network.allow_destinations"),
                host, clientId, head.Port, feature);
            return;
        }

        // In audit mode a refused CONNECT goes on as an intercepted tunnel (each request is then recorded).
        var recorded = hostFinding?.Decision ?? decision;
        var mode = decision.Verdict == Verdict.Allow ? decision.TunnelMode : TunnelMode.Intercept;
        var tunnel = new TunnelTarget(host, head.Port, clientId, mode, decision.Rule);
        feature = new ProxyConnectionFeature(feature.RemoteAddress, tunnel);
        connection.Features.Set(feature);
        _services.Refusals?.Register(connection.ConnectionId, feature);
        _services.Metrics.CountConnect(recorded);
        await _services.Audit.RecordAsync(AuditEventFactory.Connect(snapshot, feature.RemoteAddress, clientId, host, head.Port, recorded, 200, started,
            hostCarriesCredential: hostFinding is not null));

        await connection.Transport.Output.WriteAsync("HTTP/1.1 200 Connection Established\r\n\r\n"u8.ToArray());
        _services.Metrics.ActiveTunnels.Inc();
        try
        {
            switch (mode)
            {
                case TunnelMode.Intercept:
                    await InterceptAsync(connection, feature, tunnel);
                    break;
                default:
                    await new RawTunnel(_services, connection, feature, tunnel).RunAsync();
                    break;
            }
        }
        finally
        {
            _services.Metrics.ActiveTunnels.Dec();
        }
    }

    /// <summary>
    /// A refused CONNECT answered inside TLS: the refusal is recorded (one event, as for a refusal before TLS), the
    /// tunnel is accepted, and the first request inside gets the refusal (<c>ProxyRequestDelegate</c>); nothing is
    /// forwarded and no upstream is contacted.
    /// </summary>
    private async Task ExplainInsideTlsAsync(
        ConnectionContext connection, ProxyConnectionFeature feature, Denial denial, string host, string? clientId, int port, long started)
    {
        var snapshot = _services.Runtime.Current;
        _services.Metrics.CountConnect(denial.Decision);
        if (!await _services.Audit.RecordAsync(AuditEventFactory.Connect(snapshot, feature.RemoteAddress, clientId, host, port,
                denial.Decision, denial.Status, started)))
        {
            // The refusal could not be recorded: say so plainly, before TLS.
            await connection.Transport.Output.WriteAsync(Denial.Of(Reasons.AuditUnavailable, "audit",
                "the audit store cannot record events").ToRawResponse(snapshot.Policy.FilePath));
            await connection.Transport.Output.CompleteAsync();
            return;
        }

        var tunnel = new TunnelTarget(host, port, clientId, TunnelMode.Intercept, denial.Rule) { Refusal = denial };
        feature = new ProxyConnectionFeature(feature.RemoteAddress, tunnel);
        connection.Features.Set(feature);
        _services.Refusals?.Register(connection.ConnectionId, feature);
        await connection.Transport.Output.WriteAsync("HTTP/1.1 200 Connection Established\r\n\r\n"u8.ToArray());
        await InterceptAsync(connection, feature, tunnel);
    }

    private async Task InterceptAsync(ConnectionContext connection, ProxyConnectionFeature feature, TunnelTarget tunnel)
    {
        // The first bytes must be a TLS ClientHello; look without consuming (examined stays at start).
        var input = connection.Transport.Input;
        using var timeout = new CancellationTokenSource(_services.Limits.TlsHandshakeTimeout);
        ReadResult result;
        try
        {
            result = await input.ReadAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var first = result.Buffer.IsEmpty ? (byte)0 : result.Buffer.FirstSpan[0];
        input.AdvanceTo(result.Buffer.Start);
        if (result.Buffer.IsEmpty)
        {
            return;
        }

        if (first != 0x16)
        {
            await _services.Audit.RecordAsync(AuditEventFactory.Tunnel(_services.Runtime.Current, feature, tunnel,
                Decision.Enforce(tunnel.Rule, Reasons.NotTls), null, Stopwatch.GetTimestamp()));
            return; // plain bytes where TLS is expected: close
        }

        await _next(connection);
    }

    private async Task RefuseAsync(
        ConnectionContext connection, Denial denial, string? host, string? clientId, int port, ProxyConnectionFeature feature,
        string? extraHeaders = null, bool hostCarriesCredential = false)
    {
        var snapshot = _services.Runtime.Current;
        _services.Metrics.CountConnect(denial.Decision);
        await _services.Audit.RecordAsync(AuditEventFactory.Connect(snapshot, feature.RemoteAddress, clientId, host ?? string.Empty, port,
            denial.Decision, denial.Status, 0, hostCarriesCredential: hostCarriesCredential));
        try
        {
            await connection.Transport.Output.WriteAsync(denial.ToRawResponse(snapshot.Policy.FilePath, extraHeaders));
            await connection.Transport.Output.CompleteAsync();
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ConnectionResetException)
        {
            EngineLog.RefusalNotSent(_logger, ex.Message);
        }
    }

    internal static Denial TooManyConnections { get; } = Denial.Of(Reasons.TooManyConnections, "limits",
        "this client has too many open connections");

    internal static string AddressKey(ProxyConnectionFeature feature) =>
        "address:" + (feature.RemoteAddress is { } address ? DestinationGuard.Effective(address).ToString() : "?");

    private static bool StartsLikeConnect(ReadOnlySequence<byte> buffer)
    {
        var prefix = ConnectHead.Prefix;
        Span<byte> first = stackalloc byte[8];
        var n = (int)Math.Min(buffer.Length, prefix.Length);
        buffer.Slice(0, n).CopyTo(first);
        // A partial prefix ("CONN") is treated as CONNECT: the head reader then needs the full line
        // and refuses anything that is not a valid CONNECT head.
        return first[..n].SequenceEqual(prefix[..n]);
    }

    private static SequencePosition? FindHeadEnd(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (reader.TryReadTo(out ReadOnlySequence<byte> _, "\r\n\r\n"u8, advancePastDelimiter: true))
        {
            return reader.Position;
        }

        return null;
    }
}
