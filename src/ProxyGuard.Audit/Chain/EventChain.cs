using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ProxyGuard.Audit.Storage;

namespace ProxyGuard.Audit.Chain;

/// <summary>
/// The tamper-evidence chain of one replica's events: <c>hash(n) = SHA-256(hash(n-1) || canonical(n))</c>, where the
/// canonical bytes are the local id and every stored column in a fixed order (integers big-endian, strings as a
/// presence byte, a big-endian length and UTF-8, the duration as its IEEE-754 bits). The first event's predecessor is
/// 32 zero bytes, or the anchor left by retention (the hash of the last deleted event).
/// </summary>
internal static class EventChain
{
    public const int HashSize = 32;

    public static readonly byte[] Genesis = new byte[HashSize];

    /// <summary>The hash of the event with <paramref name="id"/> whose predecessor's hash is <paramref name="previous"/>.</summary>
    public static byte[] Next(ReadOnlySpan<byte> previous, long id, PreparedEvent e, ArrayBufferWriter<byte> scratch)
    {
        scratch.ResetWrittenCount();
        scratch.Write(previous);
        Int64(scratch, id);
        Int64(scratch, e.TimeMicros);
        Text(scratch, e.Client);
        Text(scratch, e.ClientAddress);
        Text(scratch, e.Kind);
        Text(scratch, e.Method);
        Text(scratch, e.Scheme);
        Text(scratch, e.Host);
        Int64(scratch, e.Port);
        Text(scratch, e.Path);
        Text(scratch, e.Decision);
        Text(scratch, e.Rule);
        Text(scratch, e.Reason);
        Text(scratch, e.FindingsJson);
        Text(scratch, e.SecretsJson);
        if (e.Status is int status)
        {
            scratch.GetSpan(1)[0] = 1;
            scratch.Advance(1);
            Int64(scratch, status);
        }
        else
        {
            scratch.GetSpan(1)[0] = 0;
            scratch.Advance(1);
        }

        Int64(scratch, e.RequestBytes);
        Int64(scratch, e.ResponseBytes);
        Int64(scratch, BitConverter.DoubleToInt64Bits(e.DurationMs));
        Text(scratch, e.GrantJson);
        return SHA256.HashData(scratch.WrittenSpan);
    }

    public static string Hex(ReadOnlySpan<byte> hash) => Convert.ToHexStringLower(hash);

    private static void Int64(ArrayBufferWriter<byte> w, long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(w.GetSpan(8), value);
        w.Advance(8);
    }

    private static void Text(ArrayBufferWriter<byte> w, string? value)
    {
        if (value is null)
        {
            w.GetSpan(1)[0] = 0;
            w.Advance(1);
            return;
        }

        var length = Encoding.UTF8.GetByteCount(value);
        var span = w.GetSpan(5 + length);
        span[0] = 1;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        Encoding.UTF8.GetBytes(value, span[5..]);
        w.Advance(5 + length);
    }
}
