using System.Text;

namespace ProxyGuard.Engine.Framing;

/// <summary>
/// A header-block decoder (RFC 7541) that follows one HTTP/2 connection's request header blocks in step with
/// Kestrel's own decoder, so that the proxy sees each field as the client sent it (Kestrel replaces Host with
/// :authority before the application runs). Bounded: strings by the block they come from, the dynamic table by
/// the size the server advertised. Any malformed input throws <see cref="InvalidDataException"/>; Kestrel ends the
/// connection on the same input.
/// </summary>
internal sealed class HpackDecoder
{
    private readonly int _maxTableSize;
    private readonly List<(string Name, string Value)> _table = []; // newest first
    private int _tableSize;
    private int _currentMax;

    public HpackDecoder(int maxTableSize)
    {
        _maxTableSize = maxTableSize;
        _currentMax = maxTableSize;
    }

    /// <summary>Decodes one complete header block, handing every field to <paramref name="onField"/>.</summary>
    public void Decode(ReadOnlySpan<byte> block, Action<string, string> onField)
    {
        var i = 0;
        while (i < block.Length)
        {
            var b = block[i];
            if ((b & 0x80) != 0)
            {
                var index = ReadInteger(block, ref i, 7);
                var (name, value) = Lookup(index);
                onField(name, value);
            }
            else if ((b & 0xC0) == 0x40)
            {
                var (name, value) = ReadLiteral(block, ref i, 6);
                Insert(name, value);
                onField(name, value);
            }
            else if ((b & 0xE0) == 0x20)
            {
                var size = ReadInteger(block, ref i, 5);
                if (size > _maxTableSize)
                {
                    throw new InvalidDataException("HPACK table size update above the advertised limit");
                }

                _currentMax = size;
                Evict(0);
            }
            else
            {
                // 0000xxxx without indexing, 0001xxxx never indexed
                var (name, value) = ReadLiteral(block, ref i, 4);
                onField(name, value);
            }
        }
    }

    private (string Name, string Value) ReadLiteral(ReadOnlySpan<byte> block, ref int i, int prefix)
    {
        var index = ReadInteger(block, ref i, prefix);
        var name = index == 0 ? ReadString(block, ref i) : Lookup(index).Name;
        var value = ReadString(block, ref i);
        return (name, value);
    }

    private (string Name, string Value) Lookup(int index)
    {
        if (index <= 0)
        {
            throw new InvalidDataException("HPACK index 0");
        }

        if (index <= StaticTable.Length)
        {
            return StaticTable[index - 1];
        }

        var dynamicIndex = index - StaticTable.Length - 1;
        if (dynamicIndex >= _table.Count)
        {
            throw new InvalidDataException("HPACK index outside the table");
        }

        return _table[dynamicIndex];
    }

    private void Insert(string name, string value)
    {
        var size = name.Length + value.Length + 32;
        if (size > _currentMax)
        {
            _table.Clear();
            _tableSize = 0;
            return;
        }

        Evict(size);
        _table.Insert(0, (name, value));
        _tableSize += size;
    }

    private void Evict(int room)
    {
        while (_table.Count > 0 && _tableSize + room > _currentMax)
        {
            var last = _table[^1];
            _tableSize -= last.Name.Length + last.Value.Length + 32;
            _table.RemoveAt(_table.Count - 1);
        }
    }

    private static int ReadInteger(ReadOnlySpan<byte> block, ref int i, int prefixBits)
    {
        var mask = (1 << prefixBits) - 1;
        var value = block[i] & mask;
        i++;
        if (value < mask)
        {
            return value;
        }

        var shift = 0;
        while (true)
        {
            if (i >= block.Length)
            {
                throw new InvalidDataException("truncated HPACK integer");
            }

            var b = block[i++];
            value += (b & 0x7F) << shift;
            shift += 7;
            if ((b & 0x80) == 0)
            {
                break;
            }

            if (shift > 21)
            {
                throw new InvalidDataException("HPACK integer too large");
            }
        }

        if (value < 0)
        {
            throw new InvalidDataException("HPACK integer too large");
        }

        return value;
    }

    private static string ReadString(ReadOnlySpan<byte> block, ref int i)
    {
        if (i >= block.Length)
        {
            throw new InvalidDataException("truncated HPACK string");
        }

        var huffman = (block[i] & 0x80) != 0;
        var length = ReadInteger(block, ref i, 7);
        if (length > block.Length - i)
        {
            throw new InvalidDataException("HPACK string longer than its block");
        }

        var raw = block.Slice(i, length);
        i += length;
        // Latin-1 keeps one char per octet, so lengths (and the table's size accounting) stay the octet counts.
        return huffman ? Huffman.Decode(raw) : Encoding.Latin1.GetString(raw);
    }

    private static readonly (string Name, string Value)[] StaticTable =
    [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""),
        ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""),
        ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""),
        ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ];

    /// <summary>
    /// The HPACK Huffman code (RFC 7541 Appendix B). It is canonical, so the code lengths per symbol (0-255, then
    /// EOS) define it; decoding walks the canonical code one bit at a time, linear in the input.
    /// </summary>
    private static class Huffman
    {
        private static readonly byte[] Lengths =
        [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
        30,
        ];

        private const int MaxLength = 30;
        private static readonly int[] FirstCode = new int[MaxLength + 2];
        private static readonly int[] Count = new int[MaxLength + 2];
        private static readonly int[] Offset = new int[MaxLength + 2];
        private static readonly int[] Symbols = BuildSymbols();

        private static int[] BuildSymbols()
        {
            var symbols = Enumerable.Range(0, Lengths.Length).OrderBy(s => Lengths[s]).ThenBy(s => s).ToArray();
            foreach (var l in Lengths)
            {
                Count[l]++;
            }

            var code = 0;
            var offset = 0;
            for (var l = 1; l <= MaxLength; l++)
            {
                FirstCode[l] = code;
                Offset[l] = offset;
                code = (code + Count[l]) << 1;
                offset += Count[l];
            }

            return symbols;
        }

        public static string Decode(ReadOnlySpan<byte> input)
        {
            var sb = new StringBuilder(input.Length * 8 / 5);
            var code = 0;
            var length = 0;
            var allOnes = true;
            foreach (var b in input)
            {
                for (var bit = 7; bit >= 0; bit--)
                {
                    var one = (b >> bit) & 1;
                    code = (code << 1) | one;
                    length++;
                    allOnes &= one == 1;
                    var index = code - FirstCode[length];
                    if (index >= 0 && index < Count[length])
                    {
                        var symbol = Symbols[Offset[length] + index];
                        if (symbol == 256)
                        {
                            throw new InvalidDataException("EOS in an HPACK Huffman string");
                        }

                        sb.Append((char)symbol);
                        code = 0;
                        length = 0;
                        allOnes = true;
                    }
                    else if (length >= MaxLength)
                    {
                        throw new InvalidDataException("invalid HPACK Huffman code");
                    }
                }
            }

            // Padding: fewer than 8 bits, all ones (a prefix of EOS).
            if (length > 7 || !allOnes)
            {
                throw new InvalidDataException("invalid HPACK Huffman padding");
            }

            return sb.ToString();
        }
    }
}
