using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace ProxyGuard.Engine.Framing;

/// <summary>
/// Connection middleware in front of Kestrel's HTTP layer (plain connections and decrypted tunnels): every byte
/// Kestrel parses first passes a tracker that records each request head as the client sent it
/// (<see cref="FramingFeature"/>), because Kestrel normalises some ambiguous heads instead of refusing them. The
/// strict-HTTP stage refuses what the tracker flagged. The tracker never changes a byte and buffers only a bounded
/// part of one head or header block.
/// </summary>
internal sealed class FramingGuard(ConnectionDelegate next, int maxHead, int headerTableSize, int maxFrame, int maxHeaderBlock)
{
    public Task OnConnectionAsync(ConnectionContext connection)
    {
        var feature = new FramingFeature();
        var h2 = connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol.Span.SequenceEqual("h2"u8) == true;
        Action<ReadOnlySpan<byte>> feed = h2
            ? new Http2FramingTracker(feature, headerTableSize, maxFrame, maxHeaderBlock).Feed
            : new Http1FramingTracker(feature, maxHead).Feed;
        connection.Features.Set(feature);
        var transport = connection.Transport;
        connection.Transport = new DuplexPipe(new TrackingReader(transport.Input, feature, feed), transport.Output);
        return next(connection);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>Feeds every byte to the tracker before Kestrel sees it, and reports how far Kestrel consumed.</summary>
    private sealed class TrackingReader(PipeReader inner, FramingFeature feature, Action<ReadOnlySpan<byte>> feed) : PipeReader
    {
        private ReadOnlySequence<byte> _last;
        private long _start; // offset of _last's first byte in the connection's stream
        private long _fed;   // bytes handed to the tracker so far

        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) =>
            Track(await inner.ReadAsync(cancellationToken));

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }

            result = Track(result);
            return true;
        }

        private ReadResult Track(ReadResult result)
        {
            _last = result.Buffer;
            var end = _start + _last.Length;
            if (end > _fed)
            {
                foreach (var segment in _last.Slice(_fed - _start))
                {
                    feed(segment.Span);
                }

                _fed = end;
            }

            return result;
        }

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            _start += _last.Slice(0, consumed).Length;
            _last = default;
            feature.Consumed(_start);
            inner.AdvanceTo(consumed, examined);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}
