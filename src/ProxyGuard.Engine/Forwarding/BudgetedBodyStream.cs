using ProxyGuard.Engine.Budgets;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>
/// A request body streamed upstream without a known length, read through its upload budgets: each read is counted
/// before the forwarder sees it, and a read that does not fit fails the body (the forwarder then aborts the upstream
/// request, so the upstream never receives a complete request, nor the bytes of that read).
/// </summary>
internal sealed class BudgetedBodyStream(Stream inner, StreamedUpload upload) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken);
        if (n > 0 && !await upload.TakeAsync(n))
        {
            throw new IOException("the request body was cut off: an upload budget of the policy is spent");
        }

        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
