using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ProxyGuard.Audit.Chain;

/// <summary>
/// A signed checkpoint of one replica's chain: checkpoint number <see cref="Number"/> says that the replica's event
/// <see cref="EventId"/> had chain hash <see cref="EventHash"/> at <see cref="TimeMicros"/>. Checkpoints are numbered
/// from 1 and each one covers the previous one's hash (<see cref="Previous"/>), so a deleted, reordered or replayed
/// checkpoint breaks the numbering, the link or the signature.
/// </summary>
public sealed record Checkpoint(string ReplicaId, long Number, long EventId, byte[] EventHash, long TimeMicros, byte[] Previous, byte[] KeyId, byte[] Signature)
{
    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("proxyguard-checkpoint-v1");

    /// <summary>The bytes that are signed: a domain tag, the replica id (length-prefixed UTF-8) and every field but the signature.</summary>
    public static byte[] Message(string replicaId, long number, long eventId, ReadOnlySpan<byte> eventHash, long timeMicros, ReadOnlySpan<byte> previous)
    {
        ArgumentNullException.ThrowIfNull(replicaId);
        var replica = Encoding.UTF8.GetBytes(replicaId);
        var message = new byte[Domain.Length + 4 + replica.Length + 8 + 8 + eventHash.Length + 8 + previous.Length];
        var span = message.AsSpan();
        Domain.CopyTo(span);
        span = span[Domain.Length..];
        BinaryPrimitives.WriteInt32BigEndian(span, replica.Length);
        replica.CopyTo(span[4..]);
        span = span[(4 + replica.Length)..];
        BinaryPrimitives.WriteInt64BigEndian(span, number);
        BinaryPrimitives.WriteInt64BigEndian(span[8..], eventId);
        span = span[16..];
        eventHash.CopyTo(span);
        span = span[eventHash.Length..];
        BinaryPrimitives.WriteInt64BigEndian(span, timeMicros);
        previous.CopyTo(span[8..]);
        return message;
    }

    /// <summary>The signed bytes of this checkpoint.</summary>
    public byte[] Message() => Message(ReplicaId, Number, EventId, EventHash, TimeMicros, Previous);

    /// <summary>What the next checkpoint links to: SHA-256 of this one's signed bytes.</summary>
    public byte[] Hash() => SHA256.HashData(Message());

    /// <summary>The time as UTC, for messages.</summary>
    public DateTimeOffset Time => DateTimeOffset.UnixEpoch.AddTicks(TimeMicros * 10);
}
