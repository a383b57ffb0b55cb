using ProxyGuard.Inspection.Budgets;
// Over 400 lines: one incremental RFC 6455 state machine (header, payload, reassembly, re-framing, buffers),
// kept together so that every byte's path can be read in one place.
using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Forwarding.WebSockets;

/// <summary>
/// One direction of a WebSocket connection, parsed incrementally (each input byte is looked at a constant number of
/// times: linear in the input). Frames are checked against RFC 6455 (reserved bits and opcodes, masking by the side
/// that must mask, minimal lengths, control frames at most 125 bytes and never fragmented, continuation order);
/// each data message is reassembled up to a per-message cap (and a process-wide budget), handed to the inspector
/// whole, and written again as one frame; control frames are inspected alone and may sit between fragments.
/// Toward the upstream every frame is masked with a fresh random key; toward the client frames are unmasked.
/// After a close frame has passed, later frames of this direction are dropped.
/// </summary>
internal sealed class WebSocketFrameFilter : IDisposable
{
    private const int PoolLimit = 1024 * 1024;

    private readonly bool _fromClient;
    private readonly long _maxMessage;
    private readonly ResourceLease _reserved;
    private readonly Func<int, ReadOnlyMemory<byte>, WebSocketVerdict> _inspect;

    private readonly byte[] _head = new byte[14];
    private int _headLength;
    private bool _inPayload;
    private bool _fin;
    private int _opcode;
    private long _remaining;
    private readonly byte[] _maskKey = new byte[4];
    private int _maskIndex;
    private bool _skip;

    private readonly byte[] _control = new byte[WebSocketCodes.MaxControlPayload];
    private int _controlLength;

    private int _messageOpcode;
    private byte[]? _message;
    private int _messageLength;
    private long _messageReserved;
    private bool _messagePooled;

    private bool _closed;
    private bool _disposed;

    /// <param name="fromClient">True for frames the client sends (they must be masked; the output is masked).</param>
    /// <param name="maxMessage">Bytes of one reassembled data message.</param>
    /// <param name="budget">The process-wide budget message buffers are reserved from.</param>
    /// <param name="inspect">Decides each complete data message (text, binary) and each control frame.</param>
    public WebSocketFrameFilter(bool fromClient, long maxMessage, ResourceBudget budget, Func<int, ReadOnlyMemory<byte>, WebSocketVerdict> inspect)
    {
        ArgumentNullException.ThrowIfNull(budget);
        _fromClient = fromClient;
        _maxMessage = Math.Min(maxMessage, Array.MaxLength);
        _reserved = budget.TryReserve(0)!; // an empty lease always fits; it grows and shrinks with the buffers
        _inspect = inspect;
    }

    /// <summary>Frames ready to be written, in order.</summary>
    public Queue<OutFrame> Output { get; } = new();

    /// <summary>Set when this direction must stop: the connection is closed with its code.</summary>
    public WebSocketStop? Stop { get; private set; }

    /// <summary>True once a close frame went through in this direction.</summary>
    public bool Closed => _closed;

    /// <summary>Bytes of payload seen (as sent, before re-framing).</summary>
    public long InputBytes { get; private set; }

    /// <summary>Parses <paramref name="data"/>; false (with <see cref="Stop"/>) when the direction must stop.</summary>
    public bool Feed(ReadOnlySpan<byte> data)
    {
        InputBytes += data.Length;
        while (!data.IsEmpty && Stop is null)
        {
            if (!_inPayload)
            {
                var need = _headLength < 2 ? 2 : FullHeaderLength();
                var take = Math.Min(need - _headLength, data.Length);
                data[..take].CopyTo(_head.AsSpan(_headLength));
                _headLength += take;
                data = data[take..];
                if (_headLength >= 2 && _headLength == FullHeaderLength())
                {
                    StartFrame();
                }

                continue;
            }

            var n = (int)Math.Min(_remaining, data.Length);
            if (!_skip)
            {
                var destination = WebSocketCodes.IsControl(_opcode)
                    ? _control.AsSpan(_controlLength, n)
                    : _message.AsSpan(_messageLength, n);
                data[..n].CopyTo(destination);
                if (_fromClient)
                {
                    Unmask(destination);
                }

                if (WebSocketCodes.IsControl(_opcode))
                {
                    _controlLength += n;
                }
                else
                {
                    _messageLength += n;
                }
            }

            data = data[n..];
            _remaining -= n;
            if (_remaining == 0)
            {
                EndFrame();
            }
        }

        return Stop is null;
    }

    private int FullHeaderLength()
    {
        var len7 = _head[1] & 0x7F;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((_head[1] & 0x80) != 0 ? 4 : 0);
    }

    private void StartFrame()
    {
        var b0 = _head[0];
        var b1 = _head[1];
        var length = FullHeaderLength();
        _headLength = 0;
        _fin = (b0 & 0x80) != 0;
        _opcode = b0 & 0x0F;
        var masked = (b1 & 0x80) != 0;
        var len7 = b1 & 0x7F;
        if ((b0 & 0x70) != 0)
        {
            Fail(WebSocketCodes.ProtocolError, "a frame with reserved bits set (no extension was negotiated)");
            return;
        }

        if (_opcode is not (WebSocketCodes.Continuation or WebSocketCodes.Text or WebSocketCodes.Binary
            or WebSocketCodes.Close or WebSocketCodes.Ping or WebSocketCodes.Pong))
        {
            Fail(WebSocketCodes.ProtocolError, "a frame with a reserved opcode");
            return;
        }

        if (masked != _fromClient)
        {
            Fail(WebSocketCodes.ProtocolError, _fromClient ? "an unmasked frame from the client" : "a masked frame from the upstream");
            return;
        }

        long payload = len7;
        if (len7 == 126)
        {
            payload = BinaryPrimitives.ReadUInt16BigEndian(_head.AsSpan(2));
            if (payload < 126)
            {
                Fail(WebSocketCodes.ProtocolError, "a frame length that is not minimally encoded");
                return;
            }
        }
        else if (len7 == 127)
        {
            var wide = BinaryPrimitives.ReadUInt64BigEndian(_head.AsSpan(2));
            if (wide > long.MaxValue || wide <= ushort.MaxValue)
            {
                Fail(WebSocketCodes.ProtocolError, "a frame length that is not minimally encoded or has its top bit set");
                return;
            }

            payload = (long)wide;
        }

        if (masked)
        {
            _head.AsSpan(length - 4, 4).CopyTo(_maskKey);
        }

        _maskIndex = 0;
        _skip = _closed;
        if (WebSocketCodes.IsControl(_opcode))
        {
            if (!_fin || payload > WebSocketCodes.MaxControlPayload)
            {
                Fail(WebSocketCodes.ProtocolError, "a control frame that is fragmented or longer than 125 bytes");
                return;
            }

            _controlLength = 0;
        }
        else if (!_skip)
        {
            if (_opcode == WebSocketCodes.Continuation && _messageOpcode == 0)
            {
                Fail(WebSocketCodes.ProtocolError, "a continuation frame without a message to continue");
                return;
            }

            if (_opcode != WebSocketCodes.Continuation && _messageOpcode != 0)
            {
                Fail(WebSocketCodes.ProtocolError, "a new message before the previous one ended");
                return;
            }

            if (_messageLength + payload > _maxMessage)
            {
                Stop = new WebSocketStop(WebSocketCodes.MessageTooBig, Policy.Decisions.Reasons.OverLimit,
                    $"a WebSocket message is larger than content.max_body ({_maxMessage} bytes) and cannot be inspected");
                return;
            }

            if (_opcode != WebSocketCodes.Continuation)
            {
                _messageOpcode = _opcode;
            }

            if (!EnsureCapacity(_messageLength + (int)payload))
            {
                return;
            }
        }

        _remaining = payload;
        _inPayload = true;
        if (payload == 0)
        {
            EndFrame();
        }
    }

    private void EndFrame()
    {
        _inPayload = false;
        if (_skip)
        {
            return;
        }

        if (WebSocketCodes.IsControl(_opcode))
        {
            EndControl();
            return;
        }

        if (!_fin)
        {
            return;
        }

        var opcode = _messageOpcode;
        var message = _message.AsMemory(0, _messageLength);
        if (opcode == WebSocketCodes.Text && !System.Text.Unicode.Utf8.IsValid(message.Span))
        {
            Fail(WebSocketCodes.InvalidPayload, "a text message that is not valid UTF-8");
            return;
        }

        var verdict = _inspect(opcode, message);
        if (verdict.Stop is not null)
        {
            Stop = verdict.Stop;
            return;
        }

        if (verdict.Replacement is { } replacement)
        {
            Emit(opcode, replacement, replacement.Length, reserved: 0, pooled: false);
            ReleaseMessage();
        }
        else
        {
            // The buffer (and its reservation) goes with the frame; the next message gets a new one.
            Emit(opcode, _message, _messageLength, _messageReserved, _messagePooled);
            _message = null;
            _messageReserved = 0;
        }

        _messageOpcode = 0;
        _messageLength = 0;
    }

    private void EndControl()
    {
        var payload = _control.AsMemory(0, _controlLength);
        if (_opcode == WebSocketCodes.Close)
        {
            if (_controlLength == 1)
            {
                Fail(WebSocketCodes.ProtocolError, "a close frame with a one-byte payload");
                return;
            }

            if (_controlLength > 2 && !System.Text.Unicode.Utf8.IsValid(payload.Span[2..]))
            {
                Fail(WebSocketCodes.InvalidPayload, "a close reason that is not valid UTF-8");
                return;
            }
        }

        var verdict = _inspect(_opcode, payload);
        if (verdict.Stop is not null)
        {
            Stop = verdict.Stop;
            return;
        }

        var bytes = verdict.Replacement ?? payload.ToArray();
        if (bytes.Length > WebSocketCodes.MaxControlPayload)
        {
            // A rewritten payload that no longer fits: a close keeps its code, a ping or pong goes empty.
            bytes = _opcode == WebSocketCodes.Close ? bytes[..2] : [];
        }

        Emit(_opcode, bytes, bytes.Length, reserved: 0, pooled: false);
        if (_opcode == WebSocketCodes.Close)
        {
            _closed = true;
        }
    }

    /// <summary>Queues one final frame; toward the upstream the payload is masked in place with a fresh key.</summary>
    private void Emit(int opcode, byte[]? payload, int length, long reserved, bool pooled)
    {
        var header = new byte[14];
        header[0] = (byte)(0x80 | opcode);
        var mask = _fromClient ? 0x80 : 0;
        int n;
        if (length < 126)
        {
            header[1] = (byte)(mask | length);
            n = 2;
        }
        else if (length <= ushort.MaxValue)
        {
            header[1] = (byte)(mask | 126);
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)length);
            n = 4;
        }
        else
        {
            header[1] = (byte)(mask | 127);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(2), (ulong)length);
            n = 10;
        }

        if (_fromClient)
        {
            var key = header.AsSpan(n, 4);
            RandomNumberGenerator.Fill(key);
            n += 4;
            if (payload is not null)
            {
                ApplyMask(payload.AsSpan(0, length), key, 0);
            }
        }

        Output.Enqueue(new OutFrame(header, n, payload, length, reserved, pooled));
    }

    private bool EnsureCapacity(int needed)
    {
        var capacity = _message?.Length ?? 0;
        if (needed <= capacity)
        {
            return true;
        }

        // Exact for a single frame; doubling (up to the cap) while a fragmented message grows: linear copying.
        var target = _messageLength == 0 ? needed : (int)Math.Min(_maxMessage, Math.Max(needed, 2L * capacity));
        var delta = target - _messageReserved;
        if (!_reserved.TryGrow(delta))
        {
            Stop = new WebSocketStop(WebSocketCodes.TryAgainLater, Policy.Decisions.Reasons.WebSocketBufferFull,
                "the proxy holds as many WebSocket message bytes as it may; try again later");
            return false;
        }

        _messageReserved += delta;
        var pooled = target <= PoolLimit;
        var next = pooled ? ArrayPool<byte>.Shared.Rent(target) : GC.AllocateUninitializedArray<byte>(target);
        if (_message is not null)
        {
            _message.AsSpan(0, _messageLength).CopyTo(next);
            ReturnArray(_message, _messagePooled);
        }

        _message = next;
        _messagePooled = pooled;
        return true;
    }

    /// <summary>Queues a close frame of the proxy's own (after the frames already queued) and drops what follows.</summary>
    public void EmitClose(ushort code, string reason)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(reason);
        var payload = new byte[2 + Math.Min(text.Length, WebSocketCodes.MaxControlPayload - 2)];
        BinaryPrimitives.WriteUInt16BigEndian(payload, code);
        text.AsSpan(0, payload.Length - 2).CopyTo(payload.AsSpan(2));
        Emit(WebSocketCodes.Close, payload, payload.Length, reserved: 0, pooled: false);
        _closed = true;
    }

    /// <summary>Returns a written frame's buffer and reservation.</summary>
    public void Release(OutFrame frame)
    {
        if (frame.Payload is { } payload)
        {
            ReturnArray(payload, frame.Pooled);
        }

        _reserved.Shrink(frame.Reserved);
    }

    private void ReleaseMessage()
    {
        if (_message is not null)
        {
            ReturnArray(_message, _messagePooled);
            _message = null;
        }

        _reserved.Shrink(_messageReserved);
        _messageReserved = 0;
    }

    private static void ReturnArray(byte[] array, bool pooled)
    {
        if (pooled)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    private void Fail(ushort code, string what) =>
        Stop = new WebSocketStop(code, Policy.Decisions.Reasons.WebSocketProtocol,
            $"{(_fromClient ? "the client" : "the upstream")} sent {what}", "protocol");

    private void Unmask(Span<byte> data) => _maskIndex = ApplyMask(data, _maskKey, _maskIndex);

    private static int ApplyMask(Span<byte> data, ReadOnlySpan<byte> key, int index)
    {
        for (var i = 0; i < data.Length; i++)
        {
            data[i] ^= key[(index + i) & 3];
        }

        return (index + data.Length) & 3;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ReleaseMessage();
        while (Output.TryDequeue(out var frame))
        {
            Release(frame);
        }

        _reserved.Dispose(); // whatever is still held goes back, however this direction ended
    }
}
