using System.Buffers.Binary;

namespace ProxyGuard.Engine.Forwarding.WebSockets;

/// <summary>
/// The client's upgraded stream as the forwarder sees it. Reads (client to upstream) pull the client's bytes through
/// one frame filter and return the re-framed frames; writes (upstream to client) push the upstream's bytes through the
/// other and write the re-framed frames. Writes to the client are serialised with the proxy's own close frames, which
/// are therefore always sent between frames. When a direction stops, its peer gets a close frame with the stop's
/// code, the other peer too, and the stream then fails so the forwarder ends both copies at once.
/// The client's bytes are counted against the policy's upload budgets before they are passed on (a spent budget
/// closes both sides with 1008), and a watch closes both sides with 1001 when no byte has moved either way for the
/// idle timeout, or when the connection has lived for the lifetime cap.
/// </summary>
internal sealed class WebSocketRelayStream : Stream
{
    private const int ChunkSize = 16 * 1024;

    private readonly Stream _client;
    private readonly WebSocketRelay _relay;
    private readonly WebSocketFrameFilter _fromClient;
    private readonly WebSocketFrameFilter _fromUpstream;
    private readonly SemaphoreSlim _clientWrite = new(1, 1);
    private readonly byte[] _chunk = new byte[ChunkSize];
    private bool _clientClosedByProxy;
    private bool _stopped;
    private bool _readEnded;
    private bool _disposed;

    // The idle and lifetime watch: the timer cancels _watch; the read path then closes both sides.
    private readonly CancellationTokenSource _watch = new();
    private readonly Timer? _timer;
    private readonly long _idleMs;
    private readonly long _deadline;
    private long _lastActivity = Environment.TickCount64;
    private WebSocketStop? _timedOut;

    public WebSocketRelayStream(Stream client, WebSocketRelay relay, WebSocketFrameFilter fromClient, WebSocketFrameFilter fromUpstream)
    {
        _client = client;
        _relay = relay;
        _fromClient = fromClient;
        _fromUpstream = fromUpstream;
        _idleMs = (long)relay.IdleTimeout.TotalMilliseconds;
        _deadline = Environment.TickCount64 + (long)relay.MaxLifetime.TotalMilliseconds;
        var period = TimeSpan.FromMilliseconds(Math.Clamp(Math.Min(relay.IdleTimeout.TotalMilliseconds, relay.MaxLifetime.TotalMilliseconds) / 4, 100, 10_000));
        _timer = new Timer(static state => ((WebSocketRelayStream)state!).CheckWatch(), this, period, period);
    }

    /// <summary>Runs on the timer: past the idle timeout or the lifetime cap, wakes the read path to close both sides.</summary>
    private void CheckWatch()
    {
        var now = Environment.TickCount64;
        WebSocketStop? stop = null;
        if (now - Volatile.Read(ref _lastActivity) >= _idleMs)
        {
            stop = new WebSocketStop(WebSocketCodes.GoingAway, Policy.Decisions.Reasons.WebSocketIdle,
                $"no WebSocket frame moved either way for {_relay.IdleTimeout.TotalSeconds:0.###} s: closed by the proxy", "websocket");
        }
        else if (now >= _deadline)
        {
            stop = new WebSocketStop(WebSocketCodes.GoingAway, Policy.Decisions.Reasons.WebSocketLifetime,
                $"the WebSocket was open for {_relay.MaxLifetime.TotalSeconds:0.###} s, the longest the proxy allows: closed by the proxy", "websocket");
        }

        if (stop is null || Interlocked.CompareExchange(ref _timedOut, stop, null) is not null)
        {
            return;
        }

        try
        {
            _timer?.Dispose();
            _watch.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the relay ended meanwhile
        }
    }

    private void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);

    /// <summary>Stops the client's side: the close to the client, then one to the upstream after what was decided before.</summary>
    private async Task StopClientSideAsync(WebSocketStop stop, CancellationToken cancellationToken)
    {
        await CloseClientAsync(stop, cancellationToken);
        _fromClient.EmitClose(stop.CloseCode, CloseReason(stop));
        _stopped = true;
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_fromClient.Output.TryPeek(out var frame))
            {
                if (buffer.IsEmpty)
                {
                    return 0;
                }

                var n = Copy(frame, buffer.Span);
                if (frame.Consumed == frame.TotalLength)
                {
                    _fromClient.Output.Dequeue();
                    _fromClient.Release(frame);
                }

                return n;
            }

            if (_stopped)
            {
                throw new IOException("the WebSocket connection was closed by the proxy");
            }

            if (_readEnded)
            {
                return 0;
            }

            if (Volatile.Read(ref _timedOut) is { } timedOut && _watch.IsCancellationRequested)
            {
                // Idle or too old: both sides get a close (1001), the event a note.
                _relay.TimeoutStop ??= timedOut;
                await StopClientSideAsync(timedOut, cancellationToken);
                continue;
            }

            int read;
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _watch.Token))
            {
                try
                {
                    if (buffer.IsEmpty)
                    {
                        // The forwarder's zero-byte read: wait for data without holding a buffer.
                        _ = await _client.ReadAsync(Memory<byte>.Empty, linked.Token);
                        return 0;
                    }

                    read = await _client.ReadAsync(_chunk, linked.Token);
                }
                catch (OperationCanceledException) when (_watch.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    continue; // the watch fired: closed above
                }
            }

            if (read == 0)
            {
                _readEnded = true;
                return 0;
            }

            Touch();
            _relay.ClientBytes += read;
            if (_relay.Upload is { } upload && !await upload.TakeAsync(read))
            {
                // An upload budget is spent: these bytes never go; what was decided before does, then the close.
                var budget = upload.Exceeded?.Budget?.Name;
                var spent = new WebSocketStop(WebSocketCodes.PolicyViolation, Policy.Decisions.Reasons.BudgetExceeded,
                    $"budget '{budget}' is spent: the WebSocket was closed", budget);
                _relay.ClientStop ??= spent;
                await StopClientSideAsync(spent, cancellationToken);
                continue;
            }

            if (!_fromClient.Feed(_chunk.AsSpan(0, read)))
            {
                // What was decided before the stop still goes; then the close, to both sides.
                var stop = _fromClient.Stop!;
                _relay.ClientStop ??= stop;
                await StopClientSideAsync(stop, cancellationToken);
            }
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_clientClosedByProxy)
        {
            return;
        }

        if (!buffer.IsEmpty)
        {
            Touch();
        }

        _relay.UpstreamBytes += buffer.Length;
        var ok = _fromUpstream.Feed(buffer.Span);
        await _clientWrite.WaitAsync(cancellationToken);
        try
        {
            while (_fromUpstream.Output.TryDequeue(out var frame))
            {
                try
                {
                    if (!_clientClosedByProxy)
                    {
                        await _client.WriteAsync(frame.Header.AsMemory(0, frame.HeaderLength), cancellationToken);
                        if (frame.PayloadLength > 0)
                        {
                            await _client.WriteAsync(frame.Payload.AsMemory(0, frame.PayloadLength), cancellationToken);
                        }
                    }
                }
                finally
                {
                    _fromUpstream.Release(frame);
                }
            }

            if (!ok)
            {
                var stop = _fromUpstream.Stop!;
                _relay.UpstreamStop ??= stop;
                await WriteCloseLockedAsync(stop, cancellationToken);
            }
            else if (!_clientClosedByProxy)
            {
                await _client.FlushAsync(cancellationToken);
            }
        }
        finally
        {
            _clientWrite.Release();
        }

        if (!ok)
        {
            throw new IOException("the upstream's WebSocket frames were refused by the proxy");
        }
    }

    /// <summary>The proxy's close frame to the client, between frames.</summary>
    private async Task CloseClientAsync(WebSocketStop stop, CancellationToken cancellationToken)
    {
        await _clientWrite.WaitAsync(cancellationToken);
        try
        {
            await WriteCloseLockedAsync(stop, cancellationToken);
        }
        finally
        {
            _clientWrite.Release();
        }
    }

    private async Task WriteCloseLockedAsync(WebSocketStop stop, CancellationToken cancellationToken)
    {
        if (_clientClosedByProxy)
        {
            return;
        }

        _clientClosedByProxy = true;
        if (_fromUpstream.Closed)
        {
            return; // the upstream's close already went to the client: a second one is not allowed
        }

        var reason = System.Text.Encoding.UTF8.GetBytes(CloseReason(stop));
        var frame = new byte[4 + reason.Length];
        frame[0] = 0x80 | WebSocketCodes.Close;
        frame[1] = (byte)(2 + reason.Length);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), stop.CloseCode);
        reason.CopyTo(frame, 4);
        try
        {
            await _client.WriteAsync(frame, cancellationToken);
            await _client.FlushAsync(cancellationToken);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // The client is gone: nothing more to tell it.
        }
    }

    /// <summary>A close reason the client can show: the decision's reason name (fits the 123 bytes a close allows).</summary>
    private static string CloseReason(WebSocketStop stop) => "proxyguard: " + stop.Reason.Name;

    private static int Copy(OutFrame frame, Span<byte> destination)
    {
        var written = 0;
        if (frame.Consumed < frame.HeaderLength)
        {
            var n = Math.Min(frame.HeaderLength - frame.Consumed, destination.Length);
            frame.Header.AsSpan(frame.Consumed, n).CopyTo(destination);
            frame.Consumed += n;
            written = n;
        }

        if (written < destination.Length && frame.Consumed >= frame.HeaderLength && frame.Payload is { } payload)
        {
            var offset = frame.Consumed - frame.HeaderLength;
            var n = Math.Min(frame.PayloadLength - offset, destination.Length - written);
            payload.AsSpan(offset, n).CopyTo(destination[written..]);
            frame.Consumed += n;
            written += n;
        }

        return written;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _timer?.Dispose();
            _watch.Dispose();
            _fromClient.Dispose();
            _fromUpstream.Dispose();
            _client.Dispose();
            _clientWrite.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            if (_timer is not null)
            {
                await _timer.DisposeAsync();
            }

            _watch.Dispose();
            _fromClient.Dispose();
            _fromUpstream.Dispose();
            await _client.DisposeAsync();
            _clientWrite.Dispose();
        }

        await base.DisposeAsync();
    }
}
