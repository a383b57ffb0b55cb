using System.Buffers;

namespace ProxyGuard.Secrets.Matching;

/// <summary>
/// Incremental scrubber: keeps back fewer than <c>MaxLength</c> bytes between chunks so that a value
/// split across reads is still matched; memory is bounded by the chunk size plus that window.
/// </summary>
internal sealed class StreamingScrubber
{
    private readonly ValueMatcher _matcher;
    private byte[] _carry;
    private int _carryLength;

    public StreamingScrubber(ValueMatcher matcher)
    {
        _matcher = matcher;
        _carry = new byte[Math.Max(matcher.MaxLength, 1)];
    }

    /// <summary>Scrubs <paramref name="input"/> (appended to the held-back window); writes what is decided.</summary>
    public void Process(ReadOnlySpan<byte> input, IBufferWriter<byte> output, bool final)
    {
        if (_matcher.IsEmpty)
        {
            output.Write(input);
            return;
        }

        var total = _carryLength + input.Length;
        var rented = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        try
        {
            _carry.AsSpan(0, _carryLength).CopyTo(rented);
            input.CopyTo(rented.AsSpan(_carryLength));
            var data = rented.AsSpan(0, total);
            var decidedUpTo = final ? total : Math.Max(0, total - _matcher.MaxLength + 1);
            var copied = 0;
            var i = 0;
            while (i < decidedUpTo)
            {
                var next = _matcher.NextCandidate(data[..decidedUpTo], i);
                if (next < 0)
                {
                    i = decidedUpTo;
                    break;
                }

                i = next;
                var match = _matcher.MatchAt(data, i);
                if (match is null)
                {
                    i++;
                    continue;
                }

                output.Write(data[copied..i]);
                output.Write(match.Replacement);
                i += match.Bytes.Length;
                copied = i;
            }

            var keepFrom = Math.Max(i, copied);
            output.Write(data[copied..keepFrom]);
            _carryLength = total - keepFrom;
            if (_carryLength > _carry.Length)
            {
                _carry = new byte[_carryLength];
            }

            data[keepFrom..].CopyTo(_carry);
        }
        finally
        {
            rented.AsSpan(0, total).Clear();
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
