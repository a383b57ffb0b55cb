namespace ProxyGuard.Engine.Forwarding.WebSockets;

/// <summary>RFC 6455 opcodes and close codes the relay uses.</summary>
internal static class WebSocketCodes
{
    public const int Continuation = 0;
    public const int Text = 1;
    public const int Binary = 2;
    public const int Close = 8;
    public const int Ping = 9;
    public const int Pong = 10;

    public const int MaxControlPayload = 125;

    public const ushort GoingAway = 1001;
    public const ushort ProtocolError = 1002;
    public const ushort InvalidPayload = 1007;
    public const ushort PolicyViolation = 1008;
    public const ushort MessageTooBig = 1009;
    public const ushort TryAgainLater = 1013;

    public static bool IsControl(int opcode) => opcode >= Close;
}

/// <summary>Why a direction stopped: the close code both peers get and what the relay records.</summary>
internal sealed record WebSocketStop(ushort CloseCode, Policy.Decisions.Reason Reason, string Message, string? Rule = null);

/// <summary>What the inspector decided for one complete message or control frame.</summary>
internal readonly record struct WebSocketVerdict(WebSocketStop? Stop, byte[]? Replacement)
{
    public static WebSocketVerdict Forward => default;
}

/// <summary>One re-framed frame waiting to be written: its header and its (already masked, when toward upstream) payload.</summary>
internal sealed class OutFrame(byte[] header, int headerLength, byte[]? payload, int payloadLength, long reserved, bool pooled)
{
    public byte[] Header { get; } = header;

    public int HeaderLength { get; } = headerLength;

    public byte[]? Payload { get; } = payload;

    public int PayloadLength { get; } = payloadLength;

    /// <summary>Bytes of the process budget this frame's payload holds until it is written.</summary>
    public long Reserved { get; } = reserved;

    public bool Pooled { get; } = pooled;

    /// <summary>Bytes of header then payload already handed to the reader.</summary>
    public int Consumed { get; set; }

    public int TotalLength => HeaderLength + PayloadLength;
}
