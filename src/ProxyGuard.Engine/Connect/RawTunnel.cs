using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using ProxyGuard.Engine.Auditing;
using ProxyGuard.Engine.Network;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Engine.Logging;

namespace ProxyGuard.Engine.Connect;

/// <summary>
/// A tunnel without interception: <c>inspect: false</c> (TLS end to end; the ClientHello's SNI must
/// equal the CONNECT target) or <c>protocol: tcp</c> (raw bytes; a TLS ClientHello is refused).
/// </summary>
internal sealed class RawTunnel
{
    private const int MaxClientHelloBytes = 16 * 1024 + 5;
    private readonly ProxyServices _services;
    private readonly ConnectionContext _connection;
    private readonly ProxyConnectionFeature _feature;
    private readonly TunnelTarget _tunnel;
    private readonly ILogger _logger;
    private long _up;
    private long _down;

    public RawTunnel(ProxyServices services, ConnectionContext connection, ProxyConnectionFeature feature, TunnelTarget tunnel)
    {
        _services = services;
        _connection = connection;
        _feature = feature;
        _tunnel = tunnel;
        _logger = services.LoggerFactory.CreateLogger<RawTunnel>();
    }

    public async Task RunAsync()
    {
        var started = Stopwatch.GetTimestamp();
        var input = _connection.Transport.Input;
        ReadResult first;
        using (var timeout = new CancellationTokenSource(_services.Limits.TlsHandshakeTimeout))
        {
            try
            {
                first = await ReadFirstAsync(input, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        var head = first.Buffer.Length > MaxClientHelloBytes ? first.Buffer.Slice(0, MaxClientHelloBytes) : first.Buffer;
        var bytes = head.ToArray();
        string? refusal = null;
        if (_tunnel.Mode == TunnelMode.Passthrough)
        {
            var status = TlsClientHello.TryGetServerName(bytes, out var sni);
            if (status != TlsClientHello.ParseStatus.Complete)
            {
                refusal = "not-tls";
            }
            else if (sni is null)
            {
                // Clients send no SNI for IP literals; for a named target a missing SNI leaves the
                // server's identity to whatever it defaults to, so it is refused like a mismatch.
                if (!HostNormalizer.TryGetAddress(_tunnel.Host, out _))
                {
                    refusal = "sni-missing";
                }
            }
            else
            {
                var sniHost = StripPort(sni);
                if (!HostNormalizer.TryNormalize(sniHost, out var normalizedSni, out _) || normalizedSni != _tunnel.Host)
                {
                    refusal = "sni-mismatch";
                }
            }
        }
        else if (TlsClientHello.LooksLikeTls(bytes))
        {
            refusal = "tls-not-allowed";
        }

        if (refusal is not null)
        {
            input.AdvanceTo(first.Buffer.End);
            await RecordAsync("deny", refusal, started);
            return;
        }

        Socket upstream;
        try
        {
#pragma warning disable CA2000 // disposed by the using around the pumps below (the catches return before it exists)
            upstream = await _services.Connector.ConnectAsync(_tunnel.Host, _tunnel.Port, _connection.ConnectionClosed);
#pragma warning restore CA2000
        }
        catch (DestinationBlockedException ex)
        {
            input.AdvanceTo(first.Buffer.End);
            await RecordAsync("deny", ex.Reason, started);
            return;
        }
        catch (Exception ex) when (ex is SocketException or TimeoutException or OperationCanceledException)
        {
            input.AdvanceTo(first.Buffer.End);
            _services.Metrics.UpstreamErrors.WithLabels("connect").Inc();
            await RecordAsync("allow", "upstream-connect", started, 502);
            return;
        }

        using (upstream)
        await using (var upstreamStream = new NetworkStream(upstream, ownsSocket: false))
        {
            using var idle = new IdleWatch(_services.Limits.TunnelIdleTimeout, _connection.ConnectionClosed);
            var down = PumpDownAsync(upstreamStream, _connection.Transport.Output, idle);
            var up = PumpUpAsync(input, first, upstreamStream, upstream, idle);
            await Task.WhenAny(up, down);
            idle.Cancel();
            try
            {
                await Task.WhenAll(up, down);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or ObjectDisposedException or ConnectionResetException or InvalidOperationException)
            {
                EngineLog.TunnelEnded(_logger, _tunnel.Host, _tunnel.Port, ex.Message);
            }
        }

        await RecordAsync("allow", null, started, 200);
    }

    private static async Task<ReadResult> ReadFirstAsync(PipeReader input, CancellationToken ct)
    {
        while (true)
        {
            var result = await input.ReadAsync(ct);
            var buffer = result.Buffer;
            var span = buffer.Length > MaxClientHelloBytes ? buffer.Slice(0, MaxClientHelloBytes).ToArray() : buffer.ToArray();
            var status = TlsClientHello.TryGetServerName(span, out _);
            if (status != TlsClientHello.ParseStatus.NeedMoreData || result.IsCompleted || buffer.Length >= MaxClientHelloBytes)
            {
                return result;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private async Task PumpUpAsync(PipeReader input, ReadResult first, NetworkStream upstream, Socket socket, IdleWatch idle)
    {
        var result = first;
        while (true)
        {
            foreach (var segment in result.Buffer)
            {
                await upstream.WriteAsync(segment, idle.Token);
                _up += segment.Length;
            }

            input.AdvanceTo(result.Buffer.End);
            idle.Touch();
            if (result.IsCompleted || result.IsCanceled)
            {
                socket.Shutdown(SocketShutdown.Send);
                return;
            }

            result = await input.ReadAsync(idle.Token);
        }
    }

    private async Task PumpDownAsync(NetworkStream upstream, PipeWriter output, IdleWatch idle)
    {
        while (true)
        {
            var memory = output.GetMemory(16 * 1024);
            var n = await upstream.ReadAsync(memory, idle.Token);
            if (n == 0)
            {
                await output.CompleteAsync();
                return;
            }

            output.Advance(n);
            _down += n;
            idle.Touch();
            var flush = await output.FlushAsync(idle.Token);
            if (flush.IsCompleted)
            {
                return;
            }
        }
    }

    private async Task RecordAsync(string verdict, string? reason, long started, int? status = null)
    {
        var snapshot = _services.Runtime.Current;
        var known = Reasons.Find(reason);
        var decision = verdict == "deny"
            ? Decision.Enforce(_tunnel.Rule, known ?? Reasons.UpstreamError)
            : Decision.Allow(_tunnel.Rule, known ?? Reasons.RuleAllow, known?.Stage ?? DecisionStage.Rules, snapshot.Policy.Mode);
        var e = AuditEventFactory.Tunnel(snapshot, _feature, _tunnel, decision, status, started);
        await _services.Audit.RecordAsync(e with
        {
            Method = null,
            Scheme = _tunnel.Mode == TunnelMode.Tcp ? "tcp" : "tls",
            RequestBytes = _up,
            ResponseBytes = _down,
        });
    }

    internal static string StripPort(string sni)
    {
        var colon = sni.LastIndexOf(':');
        return colon > 0 && !sni.Contains("::", StringComparison.Ordinal) && sni.IndexOf(':', StringComparison.Ordinal) == colon ? sni[..colon] : sni;
    }

    /// <summary>Cancels when neither direction moved for the idle time.</summary>
    private sealed class IdleWatch : IDisposable
    {
        private readonly CancellationTokenSource _cts;
        private readonly TimeSpan _idle;
        private readonly Timer _timer;
        private long _last = Environment.TickCount64;

        public IdleWatch(TimeSpan idle, CancellationToken outer)
        {
            _idle = idle;
            _cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
            var period = TimeSpan.FromMilliseconds(Math.Max(250, idle.TotalMilliseconds / 4));
            _timer = new Timer(_ => Check(), null, period, period);
        }

        public CancellationToken Token => _cts.Token;

        public void Touch() => Volatile.Write(ref _last, Environment.TickCount64);

        public void Cancel() => _cts.Cancel();

        public void Dispose()
        {
            _timer.Dispose();
            _cts.Dispose();
        }

        private void Check()
        {
            if (Environment.TickCount64 - Volatile.Read(ref _last) > _idle.TotalMilliseconds)
            {
                try
                {
                    _cts.Cancel();
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }
    }
}
