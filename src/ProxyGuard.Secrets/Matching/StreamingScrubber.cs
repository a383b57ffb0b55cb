using System.Buffers;
using ProxyGuard.Inspection.Matching;

namespace ProxyGuard.Secrets.Matching;

/// <summary>
/// Incremental scrubber over the shared <see cref="RealValueMatcher"/>. Between chunks it holds back
/// only the bytes from which some form of some value could still be completed by the next chunk (a
/// prefix of a form, or an unfinished escape), at most <see cref="RealValueMatcher.Window"/> bytes, so a
/// value split across reads is still matched while ordinary text is passed on at once. Memory is
/// bounded by the chunk size plus that window.
/// </summary>
internal sealed class StreamingScrubber
{
    private readonly RealValueMatcher _matcher;
    private readonly IReadOnlyList<byte[]> _replacements;
    private byte[] _carry = [];
    private int _carryLength;

    public StreamingScrubber(RealValueMatcher matcher, IReadOnlyList<byte[]> replacements)
    {
        _matcher = matcher;
        _replacements = replacements;
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

            // A match starting before decidedUpTo lies entirely within data: pendingFrom is where the
            // longest still-open prefix of any form begins (Window also bounds it).
            var matches = _matcher.FindAll(data, out var pendingFrom);
            var decidedUpTo = final ? total : Math.Max(pendingFrom, total - _matcher.Window + 1);
            decidedUpTo = Math.Min(decidedUpTo, total);
            var copied = 0;
            foreach (var match in matches)
            {
                if (match.Start >= decidedUpTo)
                {
                    break;
                }

                if (match.Start < copied)
                {
                    continue;
                }

                output.Write(data[copied..match.Start]);
                output.Write(_replacements[match.Owner]);
                copied = match.End;
            }

            var keepFrom = Math.Max(decidedUpTo, copied);
            output.Write(data[copied..keepFrom]);
            _carryLength = total - keepFrom;
            if (_carryLength > _carry.Length)
            {
                // Held-back bytes are at most the matcher's window: allocated once, when first needed.
                _carry = new byte[Math.Max(_carryLength, Math.Min(_matcher.Window, 4096))];
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
