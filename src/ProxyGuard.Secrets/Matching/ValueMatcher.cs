using System.Buffers;

namespace ProxyGuard.Secrets.Matching;

/// <summary>
/// Multi-pattern byte matcher: at each position the longest pattern that matches wins, scanning left
/// to right without overlaps (the same decisions whole-buffer and streaming).
/// </summary>
internal sealed class ValueMatcher
{
    private readonly Pattern[]?[] _byFirstByte = new Pattern[]?[256];
    private readonly SearchValues<byte> _firstBytes;

    public ValueMatcher(IEnumerable<Pattern> patterns)
    {
        var all = patterns.Where(p => p.Bytes.Length > 0).ToList();
        foreach (var group in all.GroupBy(p => p.Bytes[0]))
        {
            _byFirstByte[group.Key] = group.OrderByDescending(p => p.Bytes.Length).ToArray();
        }

        _firstBytes = SearchValues.Create(all.Select(p => p.Bytes[0]).Distinct().ToArray());
        MaxLength = all.Count == 0 ? 0 : all.Max(p => p.Bytes.Length);
    }

    public static ValueMatcher Empty { get; } = new([]);

    public int MaxLength { get; }

    public bool IsEmpty => MaxLength == 0;

    /// <summary>The longest pattern that matches at <paramref name="index"/>, or null.</summary>
    public Pattern? MatchAt(ReadOnlySpan<byte> data, int index)
    {
        var candidates = _byFirstByte[data[index]];
        if (candidates is null)
        {
            return null;
        }

        var rest = data[index..];
        foreach (var pattern in candidates)
        {
            if (rest.StartsWith(pattern.Bytes))
            {
                return pattern;
            }
        }

        return null;
    }

    /// <summary>Index of the next byte at or after <paramref name="start"/> that can begin a pattern, or -1.</summary>
    public int NextCandidate(ReadOnlySpan<byte> data, int start)
    {
        if (start >= data.Length)
        {
            return -1;
        }

        var offset = data[start..].IndexOfAny(_firstBytes);
        return offset < 0 ? -1 : start + offset;
    }

    /// <summary>The first match in the data, or null.</summary>
    public Pattern? FindFirst(ReadOnlySpan<byte> data)
    {
        if (IsEmpty)
        {
            return null;
        }

        var i = 0;
        while ((i = NextCandidate(data, i)) >= 0)
        {
            var match = MatchAt(data, i);
            if (match is not null)
            {
                return match;
            }

            i++;
        }

        return null;
    }

    /// <summary>Replaces every match by its replacement; null when nothing matched.</summary>
    public byte[]? Replace(ReadOnlySpan<byte> data)
    {
        if (IsEmpty)
        {
            return null;
        }

        ArrayBufferWriter<byte>? output = null;
        var copied = 0;
        var i = 0;
        while ((i = NextCandidate(data, i)) >= 0)
        {
            var match = MatchAt(data, i);
            if (match is null)
            {
                i++;
                continue;
            }

            output ??= new ArrayBufferWriter<byte>(data.Length + 64);
            output.Write(data[copied..i]);
            output.Write(match.Replacement);
            i += match.Bytes.Length;
            copied = i;
        }

        if (output is null)
        {
            return null;
        }

        output.Write(data[copied..]);
        return output.WrittenSpan.ToArray();
    }
}

/// <summary>A form of a real value (<see cref="Bytes"/>), whose secret it is, and what replaces it.</summary>
internal sealed class Pattern(byte[] bytes, int owner, byte[] replacement)
{
    public byte[] Bytes { get; } = bytes;

    public int Owner { get; } = owner;

    public byte[] Replacement { get; } = replacement;

    public override string ToString() => $"Pattern {{ Owner = {Owner}, Length = {Bytes.Length} }}";
}
