using System.Buffers.Binary;

namespace ProxyGuard.Engine.Framing;

/// <summary>
/// Follows the client-to-proxy byte stream of an HTTP/2 connection (frames and HPACK) and records, per stream, a
/// request head that Kestrel would accept but normalise: <c>:authority</c> and <c>host</c> that disagree (Kestrel
/// replaces Host with :authority), more than one <c>host</c>, or a <c>content-length</c> that is not plain digits
/// (Kestrel reads "+5" as 5). Anything it cannot follow stops it, and every later stream is then unverified.
/// </summary>
internal sealed class Http2FramingTracker
{
    private const int FrameHeaderLength = 9;
    private const byte TypeHeaders = 0x1;
    private const byte TypeContinuation = 0x9;
    private const byte FlagEndHeaders = 0x4;
    private const byte FlagPadded = 0x8;
    private const byte FlagPriority = 0x20;
    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    private readonly FramingFeature _feature;
    private readonly HpackDecoder _hpack;
    private readonly int _maxFrame;
    private readonly int _maxBlock;
    private readonly byte[] _frameHeader = new byte[FrameHeaderLength];
    private int _prefaceSeen;
    private int _headerFill;
    private int _payloadRemaining;
    private bool _bufferPayload;
    private byte[] _payload = [];
    private int _payloadFill;
    private byte _type;
    private byte _flags;
    private int _streamId;
    private int _blockStream;
    private bool _blockIsRequest;
    private byte[] _block = new byte[1024];
    private int _blockFill;
    private bool _inBlock;
    private int _maxStream;
    private bool _stopped;

    /// <param name="maxFrame">the largest frame payload Kestrel accepts (it ends the connection on a larger one)</param>
    /// <param name="maxBlock">the largest header block (all its frames) followed; past it the tracker stops</param>
    public Http2FramingTracker(FramingFeature feature, int headerTableSize, int maxFrame, int maxBlock)
    {
        _feature = feature;
        _hpack = new HpackDecoder(headerTableSize);
        _maxFrame = maxFrame;
        _maxBlock = maxBlock;
    }

    public void Feed(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && !_stopped)
        {
            if (_prefaceSeen < Preface.Length)
            {
                var n = Math.Min(data.Length, Preface.Length - _prefaceSeen);
                if (!data[..n].SequenceEqual(Preface.Slice(_prefaceSeen, n)))
                {
                    Stop();
                    return;
                }

                _prefaceSeen += n;
                data = data[n..];
                continue;
            }

            if (_headerFill < FrameHeaderLength)
            {
                var n = Math.Min(data.Length, FrameHeaderLength - _headerFill);
                data[..n].CopyTo(_frameHeader.AsSpan(_headerFill));
                _headerFill += n;
                data = data[n..];
                if (_headerFill == FrameHeaderLength)
                {
                    StartFrame();
                }

                continue;
            }

            var take = Math.Min(data.Length, _payloadRemaining);
            if (_bufferPayload)
            {
                data[..take].CopyTo(_payload.AsSpan(_payloadFill));
                _payloadFill += take;
            }

            _payloadRemaining -= take;
            data = data[take..];
            if (_payloadRemaining == 0)
            {
                EndFrame();
            }
        }
    }

    private void StartFrame()
    {
        var length = (_frameHeader[0] << 16) | (_frameHeader[1] << 8) | _frameHeader[2];
        _type = _frameHeader[3];
        _flags = _frameHeader[4];
        _streamId = (int)(BinaryPrimitives.ReadUInt32BigEndian(_frameHeader.AsSpan(5)) & 0x7FFFFFFF);
        _payloadRemaining = length;
        _bufferPayload = _type is TypeHeaders or TypeContinuation;
        if (_inBlock && (_type != TypeContinuation || _streamId != _blockStream))
        {
            Stop(); // RFC 9113 6.10: nothing may interleave a header block (Kestrel ends the connection)
            return;
        }

        if (_bufferPayload)
        {
            if (length > _maxFrame || length > _maxBlock)
            {
                Stop();
                return;
            }

            if (_payload.Length < length)
            {
                _payload = new byte[Math.Max(length, 1024)];
            }

            _payloadFill = 0;
        }

        if (length == 0)
        {
            EndFrame();
        }
    }

    private void EndFrame()
    {
        _headerFill = 0;
        if (!_bufferPayload)
        {
            return;
        }

        var payload = _payload.AsSpan(0, _payloadFill);
        if (_type == TypeHeaders)
        {
            if (_streamId == 0)
            {
                Stop();
                return;
            }

            var padLength = 0;
            if ((_flags & FlagPadded) != 0)
            {
                if (payload.IsEmpty)
                {
                    Stop();
                    return;
                }

                padLength = payload[0];
                payload = payload[1..];
            }

            if ((_flags & FlagPriority) != 0)
            {
                if (payload.Length < 5)
                {
                    Stop();
                    return;
                }

                payload = payload[5..];
            }

            if (padLength > payload.Length)
            {
                Stop();
                return;
            }

            payload = payload[..^padLength];
            _inBlock = true;
            _blockStream = _streamId;
            _blockIsRequest = _streamId > _maxStream; // a later HEADERS on a known stream carries trailers
            _maxStream = Math.Max(_maxStream, _streamId);
            _blockFill = 0;
        }

        if (_blockFill + payload.Length > _maxBlock)
        {
            Stop();
            return;
        }

        if (_block.Length < _blockFill + payload.Length)
        {
            Array.Resize(ref _block, Math.Min(_maxBlock, Math.Max(_block.Length * 2, _blockFill + payload.Length)));
        }

        payload.CopyTo(_block.AsSpan(_blockFill));
        _blockFill += payload.Length;
        if ((_flags & FlagEndHeaders) != 0)
        {
            _inBlock = false;
            DecodeBlock();
        }
    }

    private void DecodeBlock()
    {
        string? authority = null;
        string? host = null;
        var hosts = 0;
        string? problem = null;
        try
        {
            _hpack.Decode(_block.AsSpan(0, _blockFill), (name, value) =>
            {
                switch (name)
                {
                    case ":authority":
                        authority = value;
                        break;
                    case "host":
                        host = value;
                        hosts++;
                        break;
                    case "content-length" when !FramingFeature.IsCanonicalLength(value):
                        problem ??= "content-length";
                        break;
                }
            });
        }
        catch (InvalidDataException)
        {
            Stop();
            return;
        }

        if (!_blockIsRequest)
        {
            return;
        }

        if (hosts > 1)
        {
            problem = "host";
        }
        else if (authority is not null && host is not null && !string.Equals(authority, host, StringComparison.OrdinalIgnoreCase))
        {
            problem = "authority";
        }

        _feature.RecordStream(_blockStream, problem switch
        {
            "authority" or "host" => FramingProblem.AuthorityMismatch,
            "content-length" => FramingProblem.NonCanonicalLength,
            _ => FramingProblem.None,
        });
    }

    private void Stop()
    {
        _stopped = true;
        _feature.StopStreams();
    }
}
