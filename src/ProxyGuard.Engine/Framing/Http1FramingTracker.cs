using System.Text;

namespace ProxyGuard.Engine.Framing;

/// <summary>
/// Follows the client-to-proxy byte stream of an HTTP/1.x connection: finds each request head, records what
/// Kestrel would normalise away (Content-Length together with Transfer-Encoding, where Kestrel drops
/// Content-Length; a Content-Length such as "+5" or "05", which Kestrel reads as 5), and skips each body as Kestrel
/// frames it (chunked when Transfer-Encoding is present, else Content-Length, else none). After a refused head, an
/// upgrade, or anything it cannot follow it stops; later requests on the connection are then unverified.
/// </summary>
internal sealed class Http1FramingTracker
{
    private enum State
    {
        Head,
        Body,
        ChunkSize,
        ChunkExtension,
        ChunkData,
        ChunkDataEnd,
        Trailers,
        Stopped,
    }

    private readonly FramingFeature _feature;
    private readonly int _maxHead;
    // The current head line's bytes (a line split across reads is joined here); bounded by maxHead.
    private byte[] _line = [];
    private int _lineLength;
    private State _state = State.Head;
    private long _offset;
    private long _headStart = -1;
    private int _headBytes;
    private long _sectionStart; // where the current chunk extension or trailer section began
    private bool _firstLine = true;
    private int _contentLengths;
    private string? _contentLength;
    private string? _transferEncoding;
    private bool _upgrade;
    private long _remaining;
    private int _chunkDigits;
    private int _chunkDataEnd;

    public Http1FramingTracker(FramingFeature feature, int maxHead)
    {
        _feature = feature;
        _maxHead = maxHead;
    }

    public void Feed(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && _state != State.Stopped)
        {
            var used = _state switch
            {
                State.Head or State.Trailers => Lines(data),
                State.Body or State.ChunkData => Skip(data),
                State.ChunkSize => ChunkSize(data),
                State.ChunkExtension => ChunkExtension(data),
                State.ChunkDataEnd => ChunkDataEnd(data),
                _ => data.Length,
            };
            _offset += used;
            data = data[used..];
        }
    }

    private int Lines(ReadOnlySpan<byte> data)
    {
        var i = 0;
        if (_state == State.Head && _headStart < 0)
        {
            // Kestrel skips empty lines between requests.
            while (i < data.Length && data[i] is (byte)'\r' or (byte)'\n')
            {
                i++;
            }

            if (i == data.Length)
            {
                return i;
            }

            _headStart = _offset + i;
        }

        var lf = data[i..].IndexOf((byte)'\n');
        var take = lf < 0 ? data.Length - i : lf + 1;
        _headBytes += take;
        if (_headBytes > _maxHead)
        {
            Stop(_state == State.Head ? _headStart : _sectionStart);
            return data.Length;
        }

        var chunk = data.Slice(i, lf < 0 ? take : lf);
        ReadOnlySpan<byte> line;
        if (lf >= 0 && _lineLength == 0)
        {
            line = chunk; // the whole line is in this read: no copy
        }
        else
        {
            if (_lineLength + chunk.Length > _line.Length)
            {
                Array.Resize(ref _line, Math.Max(_lineLength + chunk.Length, Math.Max(256, _line.Length * 2)));
            }

            chunk.CopyTo(_line.AsSpan(_lineLength));
            _lineLength += chunk.Length;
            if (lf < 0)
            {
                return data.Length;
            }

            line = _line.AsSpan(0, _lineLength);
            _lineLength = 0;
        }

        var end = _offset + i + take;
        if (line.Length > 0 && line[^1] == (byte)'\r')
        {
            line = line[..^1];
        }

        if (_state == State.Trailers)
        {
            if (line.Length == 0)
            {
                NextHead();
            }

            return i + take;
        }

        if (_firstLine)
        {
            _firstLine = false;
        }
        else if (line.Length == 0)
        {
            EndOfHead(end);
        }
        else
        {
            Header(line);
        }

        return i + take;
    }

    /// <summary>One header line: only the three framing headers are looked at (and only their values become strings).</summary>
    private void Header(ReadOnlySpan<byte> line)
    {
        var colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            return; // Kestrel refuses the head
        }

        var name = line[..colon];
        var value = line[(colon + 1)..].Trim(" \t"u8);
        if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
        {
            _contentLengths++;
            _contentLength = Encoding.Latin1.GetString(value);
        }
        else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
        {
            // Only presence and the final coding matter, and the final coding of the combined list is the final
            // coding of the last field: keep that field alone (joining every field cost time quadratic in the head).
            _transferEncoding = Encoding.Latin1.GetString(value);
        }
        else if (Ascii.EqualsIgnoreCase(name, "Connection"u8))
        {
            foreach (var range in value.Split((byte)','))
            {
                _upgrade |= Ascii.EqualsIgnoreCase(value[range].Trim(" \t"u8), "upgrade"u8);
            }
        }
    }

    private void EndOfHead(long end)
    {
        var problem = FramingProblem.None;
        if (_contentLengths > 0 && _transferEncoding is not null)
        {
            problem = FramingProblem.LengthAndTransferEncoding;
        }
        else if (_contentLengths > 1 || (_contentLengths == 1 && !FramingFeature.IsCanonicalLength(_contentLength)))
        {
            problem = FramingProblem.NonCanonicalLength;
        }

        if (!_feature.RecordHead(end, problem))
        {
            Stop(_headStart);
            return;
        }

        if (problem != FramingProblem.None || _upgrade)
        {
            // Refused (the connection closes after it) or upgraded (no more HTTP on this connection).
            Stop(end);
            return;
        }

        if (_transferEncoding is not null)
        {
            var last = _transferEncoding.Split(',')[^1].Trim(' ', '\t');
            if (!last.Equals("chunked", StringComparison.OrdinalIgnoreCase))
            {
                Stop(end); // Kestrel refuses: the final coding is not chunked
                return;
            }

            _state = State.ChunkSize;
            _remaining = 0;
            _chunkDigits = 0;
            return;
        }

        if (_contentLengths == 1 && long.TryParse(_contentLength, out var length) && length > 0)
        {
            _state = State.Body;
            _remaining = length;
            return;
        }

        NextHead();
    }

    private void NextHead()
    {
        _state = State.Head;
        _headStart = -1;
        _headBytes = 0;
        _firstLine = true;
        _contentLengths = 0;
        _contentLength = null;
        _transferEncoding = null;
        _upgrade = false;
    }

    private int Skip(ReadOnlySpan<byte> data)
    {
        var take = (int)Math.Min(data.Length, _remaining);
        _remaining -= take;
        if (_remaining == 0)
        {
            if (_state == State.Body)
            {
                NextHead();
            }
            else
            {
                _state = State.ChunkDataEnd;
                _chunkDataEnd = 0;
            }
        }

        return take;
    }

    private int ChunkSize(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length)
        {
            var digit = HexValue(data[i]);
            if (digit < 0)
            {
                if (_chunkDigits == 0)
                {
                    Stop(_offset + i);
                    return data.Length;
                }

                _state = State.ChunkExtension;
                _headBytes = 0;
                _sectionStart = _offset + i;
                return i;
            }

            if (++_chunkDigits > 15)
            {
                Stop(_offset + i);
                return data.Length;
            }

            _remaining = (_remaining << 4) | (long)digit;
            i++;
        }

        return i;
    }

    private int ChunkExtension(ReadOnlySpan<byte> data)
    {
        var lf = data.IndexOf((byte)'\n');
        var take = lf < 0 ? data.Length : lf + 1;
        _headBytes += take;
        if (_headBytes > _maxHead)
        {
            // Where the section began, not where this read began: the stop offset must not depend on how the
            // client's bytes were cut into reads.
            Stop(_sectionStart);
            return data.Length;
        }

        if (lf >= 0)
        {
            if (_remaining == 0)
            {
                _state = State.Trailers;
                _headBytes = 0;
                _sectionStart = _offset + take;
            }
            else
            {
                _state = State.ChunkData;
            }
        }

        return take;
    }

    private int ChunkDataEnd(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length && _chunkDataEnd < 2)
        {
            if (data[i] != (_chunkDataEnd == 0 ? (byte)'\r' : (byte)'\n'))
            {
                Stop(_offset + i);
                return data.Length;
            }

            _chunkDataEnd++;
            i++;
        }

        if (_chunkDataEnd == 2)
        {
            _state = State.ChunkSize;
            _remaining = 0;
            _chunkDigits = 0;
        }

        return i;
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };

    private void Stop(long offset)
    {
        _state = State.Stopped;
        _feature.StopHeads(offset);
    }
}
