using System.Buffers;
using ProxyGuard.Inspection.Matching;

namespace ProxyGuard.Secrets.Matching;

/// <summary>
/// Read mode (inner readable): yields inner's bytes scrubbed. Write mode (inner write-only): writes the
/// scrubbed bytes into inner; the held-back window is written on Dispose (or <see cref="Complete"/>).
/// </summary>
internal sealed class ScrubbingStream : Stream
{
    private const int ChunkSize = 16 * 1024;

    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly bool _readMode;
    private readonly StreamingScrubber _scrubber;
    // Grows with what one read or write produces (a small response never needs more than a few hundred bytes);
    // most proxied responses are small, so a chunk-sized buffer up front was most of the proxy's allocation.
    private readonly ArrayBufferWriter<byte> _pending = new();
    private int _pendingOffset;
    private bool _innerEnded;
    private bool _completed;
    private bool _disposed;

    public ScrubbingStream(Stream inner, RealValueMatcher matcher, IReadOnlyList<byte[]> replacements, bool leaveOpen)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
        _readMode = inner.CanRead;
        if (!_readMode && !inner.CanWrite)
        {
            throw new ArgumentException("The inner stream must be readable or writable.", nameof(inner));
        }

        _scrubber = new StreamingScrubber(matcher, replacements);
    }

    public override bool CanRead => _readMode && !_disposed;

    public override bool CanWrite => !_readMode && !_disposed;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        EnsureRead();
        if (buffer.IsEmpty)
        {
            return 0;
        }

        var chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            while (PendingCount == 0 && !_innerEnded)
            {
                var read = _inner.Read(chunk, 0, ChunkSize);
                Feed(chunk.AsSpan(0, read), read == 0);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk, clearArray: true);
        }

        return DrainTo(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        EnsureRead();
        if (buffer.IsEmpty)
        {
            return 0;
        }

        var chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            while (PendingCount == 0 && !_innerEnded)
            {
                var read = await _inner.ReadAsync(chunk.AsMemory(0, ChunkSize), cancellationToken);
                Feed(chunk.AsSpan(0, read), read == 0);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk, clearArray: true);
        }

        return DrainTo(buffer.Span);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        EnsureWrite();
        Feed(buffer, false);
        _inner.Write(_pending.WrittenSpan[_pendingOffset..]);
        ResetPending();
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        EnsureWrite();
        Feed(buffer.Span, false);
        await _inner.WriteAsync(_pending.WrittenMemory[_pendingOffset..], cancellationToken);
        ResetPending();
    }

    /// <summary>Write mode: flushes the held-back window (the end of the data). Idempotent.</summary>
    public void Complete()
    {
        if (_readMode || _completed)
        {
            return;
        }

        _completed = true;
        Feed(ReadOnlySpan<byte>.Empty, true);
        // Nothing held back, nothing written: an empty write is still a write to a body that may not exist
        // (Kestrel throws for a 204, 205 or 304 response, and the exchange would fail after forwarding).
        if (PendingCount > 0)
        {
            _inner.Write(_pending.WrittenSpan[_pendingOffset..]);
        }

        ResetPending();
    }

    public async ValueTask CompleteAsync(CancellationToken cancellationToken = default)
    {
        if (_readMode || _completed)
        {
            return;
        }

        _completed = true;
        Feed(ReadOnlySpan<byte>.Empty, true);
        if (PendingCount > 0)
        {
            await _inner.WriteAsync(_pending.WrittenMemory[_pendingOffset..], cancellationToken);
        }

        ResetPending();
    }

    public override void Flush()
    {
        if (!_readMode)
        {
            _inner.Flush();
        }
    }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        _readMode ? Task.CompletedTask : _inner.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            try
            {
                Complete();
            }
            finally
            {
                _disposed = true;
                ResetPending();
                if (!_leaveOpen)
                {
                    _inner.Dispose();
                }
            }
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            try
            {
                await CompleteAsync();
            }
            finally
            {
                _disposed = true;
                ResetPending();
                if (!_leaveOpen)
                {
                    await _inner.DisposeAsync();
                }
            }
        }

        await base.DisposeAsync();
    }

    private int PendingCount => _pending.WrittenCount - _pendingOffset;

    private void Feed(ReadOnlySpan<byte> input, bool final)
    {
        if (final)
        {
            _innerEnded = true;
        }

        _scrubber.Process(input, _pending, final);
    }

    private int DrainTo(Span<byte> buffer)
    {
        var count = Math.Min(buffer.Length, PendingCount);
        _pending.WrittenSpan.Slice(_pendingOffset, count).CopyTo(buffer);
        _pendingOffset += count;
        if (PendingCount == 0)
        {
            ResetPending();
        }

        return count;
    }

    private void ResetPending()
    {
        _pending.Clear();
        _pendingOffset = 0;
    }

    private void EnsureRead()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_readMode)
        {
            throw new NotSupportedException("This scrubbing stream is write-only.");
        }
    }

    private void EnsureWrite()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_readMode)
        {
            throw new NotSupportedException("This scrubbing stream is read-only.");
        }

        if (_completed)
        {
            throw new InvalidOperationException("The scrubbing stream was completed.");
        }
    }
}
