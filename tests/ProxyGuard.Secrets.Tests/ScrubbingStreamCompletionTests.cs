using static ProxyGuard.Secrets.Tests.Support.TestSecrets;

namespace ProxyGuard.Secrets.Tests;

/// <summary>
/// R7-2: completing a write-mode scrubbing stream that holds nothing writes nothing, not even an empty buffer (a
/// response that may not have a body, such as a 204 or a 304, refuses any write).
/// </summary>
public sealed class ScrubbingStreamCompletionTests
{
    private readonly Substitutor _substitutor = Create();

    [Fact]
    public async Task Completing_with_nothing_held_back_writes_nothing()
    {
        using var sink = new NoBodySink();
        await using (var stream = _substitutor.CreateScrubbingStream(sink, leaveOpen: true))
        {
            await stream.FlushAsync();
        }

        using (_substitutor.CreateScrubbingStream(sink, leaveOpen: true))
        {
        }

        Assert.Equal(0, sink.Writes);
    }

    [Fact]
    public async Task Completing_after_a_body_writes_only_what_was_held_back()
    {
        using var sink = new NoBodySink { Allow = true };
        await using (var stream = _substitutor.CreateScrubbingStream(sink, leaveOpen: true))
        {
            await stream.WriteAsync("a body that ends without any value"u8.ToArray());
        }

        Assert.Equal("a body that ends without any value", System.Text.Encoding.UTF8.GetString(sink.Data.ToArray()));
    }

    /// <summary>A write-only sink that counts writes and, unless allowed, throws on any (as Kestrel does for a 304).</summary>
    private sealed class NoBodySink : Stream
    {
        public bool Allow { get; init; }

        public int Writes { get; private set; }

        public MemoryStream Data { get; } = new();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Writes++; // an empty write is still a write
            if (!Allow)
            {
                throw new InvalidOperationException("Writing to the response body is invalid for responses with status code 304.");
            }

            Data.Write(buffer);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Data.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
