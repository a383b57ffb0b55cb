namespace ProxyGuard.Engine.Framing;

/// <summary>What the framing guard saw in a request head that Kestrel normalises before the application runs.</summary>
internal enum FramingProblem
{
    None,

    /// <summary>The head could not be followed (or was not seen): fail closed.</summary>
    Unverified,

    /// <summary>HTTP/1.1 Content-Length together with Transfer-Encoding.</summary>
    LengthAndTransferEncoding,

    /// <summary>A Content-Length that is not plain digits (a sign, a list, inner whitespace) or appears twice.</summary>
    NonCanonicalLength,

    /// <summary>HTTP/2 :authority and host disagree, or host appears more than once.</summary>
    AuthorityMismatch,
}

/// <summary>
/// Per-connection record of request heads as the client sent them, kept by <see cref="FramingGuard"/> and read by
/// the strict-HTTP stage. HTTP/1.x heads are keyed by where they end in the connection's byte stream (Kestrel has
/// consumed exactly the current request's head when the application runs); HTTP/2 heads by stream id. Bounded:
/// at most <see cref="MaxPending"/> records are kept; past that the guard stops and later requests are unverified.
/// </summary>
internal sealed class FramingFeature
{
    public const int MaxPending = 1024;

    private readonly Lock _lock = new();
    private readonly Queue<(long End, FramingProblem Problem)> _heads = new();
    private readonly Dictionary<int, FramingProblem> _streams = [];
    private (long End, FramingProblem Problem)? _current;
    private long _consumed;
    private long _http1StoppedAt = long.MaxValue;
    private int _verifiedStreams;
    private bool _streamsStopped;

    /// <summary>Set by the guard's reader when Kestrel consumes input.</summary>
    public void Consumed(long offset)
    {
        lock (_lock)
        {
            _consumed = offset;
        }
    }

    /// <summary>Returns false when too many heads are pending (the guard then stops).</summary>
    public bool RecordHead(long end, FramingProblem problem)
    {
        lock (_lock)
        {
            if (_heads.Count >= MaxPending)
            {
                return false;
            }

            _heads.Enqueue((end, problem));
            return true;
        }
    }

    public void StopHeads(long offset)
    {
        lock (_lock)
        {
            _http1StoppedAt = Math.Min(_http1StoppedAt, offset);
        }
    }

    public void RecordStream(int streamId, FramingProblem problem)
    {
        lock (_lock)
        {
            if (_streamsStopped)
            {
                return;
            }

            if (problem != FramingProblem.None)
            {
                if (_streams.Count >= MaxPending)
                {
                    _streamsStopped = true; // this stream and every later one stay unverified
                    return;
                }

                _streams[streamId] = problem;
            }

            _verifiedStreams = Math.Max(_verifiedStreams, streamId);
        }
    }

    public void StopStreams()
    {
        lock (_lock)
        {
            _streamsStopped = true;
        }
    }

    /// <summary>The problem of the HTTP/1.x request whose head Kestrel has just consumed.</summary>
    public FramingProblem CurrentHttp1()
    {
        lock (_lock)
        {
            if (_consumed > _http1StoppedAt)
            {
                return FramingProblem.Unverified;
            }

            while (_heads.TryPeek(out var head) && head.End <= _consumed)
            {
                _current = _heads.Dequeue();
            }

            return _current is { } found ? found.Problem : FramingProblem.Unverified;
        }
    }

    /// <summary>The problem of an HTTP/2 stream's request head (consumed: each stream is asked once).</summary>
    public FramingProblem Stream(int streamId)
    {
        lock (_lock)
        {
            if (_streams.Remove(streamId, out var problem))
            {
                return problem;
            }

            return streamId > _verifiedStreams ? FramingProblem.Unverified : FramingProblem.None;
        }
    }

    /// <summary>
    /// One canonical decimal number: RFC 9110 8.6's 1*DIGIT without a leading zero (except "0") and at most 18 digits.
    /// No sign, list, inner whitespace or other character.
    /// </summary>
    public static bool IsCanonicalLength(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > 18)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return value.Length == 1 || value[0] != '0';
    }
}
