using System.Buffers;
using System.Collections;

namespace ProxyGuard.Secrets;

/// <summary>
/// A strict (RFC 8259) JSON reader that only finds where the string values are: what a placeholder in a JSON body
/// may be substituted into. Linear in the input, no recursion (the nesting is a bit stack), no allocation per token.
/// </summary>
internal static class StrictJson
{
    private static readonly SearchValues<byte> StringStop = SearchValues.Create("\"\\"u8);

    private enum Expect
    {
        TopValue,
        Value,
        ValueOrEnd,
        Key,
        KeyOrEnd,
        Colon,
        CommaOrEnd,
    }

    /// <summary>
    /// Reads <paramref name="data"/> as a sequence of strict JSON values (whitespace, including the record separator
    /// of JSON text sequences, between them) and adds the range of every string that is a value (from its opening
    /// quote to its closing quote, exclusive) to <paramref name="values"/>, in order. False when the body is not
    /// strict JSON; the ranges found so far are then meaningless.
    /// </summary>
    public static bool TryReadValueStrings(ReadOnlySpan<byte> data, List<(int Start, int End)> values)
    {
        var stack = new BitArray(64); // true: object, false: array
        var depth = 0;
        var expect = Expect.TopValue;
        var i = data.StartsWith("\uFEFF"u8) ? 3 : 0;
        while (true)
        {
            while (i < data.Length && data[i] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or 0x1E)
            {
                if (data[i] == 0x1E && depth > 0)
                {
                    return false;
                }

                i++;
            }

            if (i >= data.Length)
            {
                return depth == 0 && expect == Expect.TopValue;
            }

            var b = data[i];
            switch (expect)
            {
                case Expect.Key or Expect.KeyOrEnd:
                    if (b == '}' && expect == Expect.KeyOrEnd)
                    {
                        depth--;
                        i++;
                        expect = AfterValue(depth);
                        break;
                    }

                    if (b != '"' || !TrySkipString(data, ref i))
                    {
                        return false;
                    }

                    expect = Expect.Colon;
                    break;
                case Expect.Colon:
                    if (b != ':')
                    {
                        return false;
                    }

                    i++;
                    expect = Expect.Value;
                    break;
                case Expect.CommaOrEnd:
                    var inObject = stack[depth - 1];
                    if (b == ',')
                    {
                        i++;
                        expect = inObject ? Expect.Key : Expect.Value;
                    }
                    else if (b == (inObject ? (byte)'}' : (byte)']'))
                    {
                        depth--;
                        i++;
                        expect = AfterValue(depth);
                    }
                    else
                    {
                        return false;
                    }

                    break;
                default: // a value
                    if (b == ']' && expect == Expect.ValueOrEnd)
                    {
                        depth--;
                        i++;
                        expect = AfterValue(depth);
                        break;
                    }

                    if (b is (byte)'{' or (byte)'[')
                    {
                        if (depth == stack.Length)
                        {
                            stack.Length *= 2;
                        }

                        stack[depth++] = b == '{';
                        i++;
                        expect = b == '{' ? Expect.KeyOrEnd : Expect.ValueOrEnd;
                        break;
                    }

                    if (b == '"')
                    {
                        var start = i;
                        if (!TrySkipString(data, ref i))
                        {
                            return false;
                        }

                        values.Add((start, i - 1));
                    }
                    else if (!TrySkipScalar(data, ref i))
                    {
                        return false;
                    }

                    expect = AfterValue(depth);
                    break;
            }
        }
    }

    private static Expect AfterValue(int depth) => depth == 0 ? Expect.TopValue : Expect.CommaOrEnd;

    /// <summary>Skips the string starting at the quote at <paramref name="i"/>; <paramref name="i"/> ends after its closing quote.</summary>
    private static bool TrySkipString(ReadOnlySpan<byte> data, ref int i)
    {
        var j = i + 1;
        while (true)
        {
            var next = data[j..].IndexOfAny(StringStop);
            if (next < 0)
            {
                return false;
            }

            j += next;
            if (data[j] == '"')
            {
                i = j + 1;
                return true;
            }

            // An escape: only the ones RFC 8259 defines.
            if (j + 1 >= data.Length)
            {
                return false;
            }

            switch (data[j + 1])
            {
                case (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t':
                    j += 2;
                    break;
                case (byte)'u' when j + 5 < data.Length && IsHex(data[j + 2]) && IsHex(data[j + 3]) && IsHex(data[j + 4]) && IsHex(data[j + 5]):
                    j += 6;
                    break;
                default:
                    return false;
            }
        }
    }

    /// <summary>A number (<c>-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?</c>) or <c>true</c>, <c>false</c>, <c>null</c>.</summary>
    private static bool TrySkipScalar(ReadOnlySpan<byte> data, ref int i)
    {
        foreach (var literal in (ReadOnlySpan<string>)["true", "false", "null"])
        {
            if (data[i] == literal[0])
            {
                for (var k = 0; k < literal.Length; k++)
                {
                    if (i + k >= data.Length || data[i + k] != literal[k])
                    {
                        return false;
                    }
                }

                i += literal.Length;
                return i >= data.Length || IsDelimiter(data[i]);
            }
        }

        var j = i;
        if (data[j] == '-')
        {
            j++;
        }

        if (j >= data.Length || !IsDigit(data[j]))
        {
            return false;
        }

        if (data[j] == '0')
        {
            j++;
        }
        else
        {
            j = Digits(data, j);
        }

        if (j < data.Length && data[j] == '.')
        {
            var fraction = Digits(data, j + 1);
            if (fraction == j + 1)
            {
                return false;
            }

            j = fraction;
        }

        if (j < data.Length && data[j] is (byte)'e' or (byte)'E')
        {
            j++;
            if (j < data.Length && data[j] is (byte)'+' or (byte)'-')
            {
                j++;
            }

            var exponent = Digits(data, j);
            if (exponent == j)
            {
                return false;
            }

            j = exponent;
        }

        i = j;
        return i >= data.Length || IsDelimiter(data[i]);
    }

    private static int Digits(ReadOnlySpan<byte> data, int j)
    {
        while (j < data.Length && IsDigit(data[j]))
        {
            j++;
        }

        return j;
    }

    private static bool IsDelimiter(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or 0x1E or (byte)',' or (byte)']' or (byte)'}';

    private static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';

    private static bool IsHex(byte b) => b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';
}
