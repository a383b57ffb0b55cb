namespace ProxyGuard.Secrets.Tests.Support;

/// <summary>A write-only stream that keeps what was written (for write-mode scrubbing streams).</summary>
internal sealed class WriteOnlySink : Stream
{
    public MemoryStream Data { get; } = new();

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => Data.Length;

    public override long Position { get => Data.Position; set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Data.Write(buffer, offset, count);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Data.Dispose();
        }

        base.Dispose(disposing);
    }
}
