using System.Buffers;

namespace ProxyGuard.Inspection.Decoding;

/// <summary>A rented byte buffer with a length. Dispose returns it to the shared pool.</summary>
internal struct PooledBytes : IDisposable
{
    private byte[]? _array;

    public PooledBytes(byte[] array, int length)
    {
        _array = array;
        Length = length;
    }

    public int Length { get; }

    public readonly ReadOnlySpan<byte> Span => _array is null ? default : _array.AsSpan(0, Length);

    public readonly byte[]? Array => _array;

    public void Dispose()
    {
        if (_array is not null)
        {
            ScratchArrays<byte>.Return(_array);
            _array = null;
        }
    }
}
