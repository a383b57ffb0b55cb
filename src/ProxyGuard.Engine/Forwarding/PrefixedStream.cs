namespace ProxyGuard.Engine.Forwarding;

/// <summary>Reads a buffered prefix, then the rest of the original body (for bodies forwarded unscanned over the limit).</summary>
internal sealed class PrefixedStream : Stream
{
    private readonly Stream _prefix;
    private readonly Stream _rest;

    public PrefixedStream(Stream prefix, Stream rest)
    {
        _prefix = prefix;
        _rest = rest;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = _prefix.Read(buffer, offset, count);
        return n > 0 ? n : _rest.Read(buffer, offset, count);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await _prefix.ReadAsync(buffer, cancellationToken);
        return n > 0 ? n : await _rest.ReadAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
