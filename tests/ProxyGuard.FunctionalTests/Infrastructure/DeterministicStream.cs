using System.Security.Cryptography;

namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>A read-only stream of pseudo-random bytes of a given length, hashing what it produced.</summary>
public sealed class DeterministicStream : Stream
{
    private readonly long _length;
    private readonly Random _random;
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _position;

    public DeterministicStream(long length, int seed)
    {
        _length = length;
        _random = new Random(seed);
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => _length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    private string? _hash;

    /// <summary>The SHA-256 of everything produced (available once the stream was read to the end).</summary>
    public string Hash() => _hash ?? throw new InvalidOperationException("the stream was not read to the end");

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = (int)Math.Min(count, _length - _position);
        _random.NextBytes(buffer.AsSpan(offset, n));
        _sha.AppendData(buffer, offset, n);
        _position += n;
        if (_position == _length && _hash is null)
        {
            _hash = Convert.ToHexString(_sha.GetHashAndReset()).ToLowerInvariant();
        }

        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _sha.Dispose();
        }

        base.Dispose(disposing);
    }
}
