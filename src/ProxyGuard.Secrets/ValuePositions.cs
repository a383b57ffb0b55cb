using System.Text;

namespace ProxyGuard.Secrets;

/// <summary>
/// Which placeholder matches sit in a name position (never substituted) rather than a value position:
/// form/query names, JSON object keys, multipart part headers. Each is one linear pass over the bytes.
/// </summary>
internal static class ValuePositions
{
    /// <summary>Secrets whose placeholder is in a name of a form-encoded body or query (before '=' of a pair separated by '&amp;' or ';').</summary>
    public static HashSet<int> InFormNames(ReadOnlySpan<byte> data, List<Substitutor.PlaceholderMatch> matches)
    {
        var names = new HashSet<int>();
        var m = 0;
        var pairStart = 0;
        while (pairStart <= data.Length && m < matches.Count)
        {
            var amp = data[pairStart..].IndexOfAny((byte)'&', (byte)';'); // ';' separates pairs for some servers too
            var pairEnd = amp < 0 ? data.Length : pairStart + amp;
            var eq = data[pairStart..pairEnd].IndexOf((byte)'=');
            var nameEnd = eq < 0 ? pairEnd : pairStart + eq;
            while (m < matches.Count && matches[m].Start < pairEnd)
            {
                if (matches[m].Start < nameEnd)
                {
                    names.Add(matches[m].Binding);
                }

                m++;
            }

            pairStart = pairEnd + 1;
        }

        return names;
    }

    /// <summary>
    /// Secrets whose placeholder is in an object key of a body that is strict JSON without a JSON media type (none,
    /// text/plain...): servers that parse JSON whatever the declared type read those keys as names. Null when the body
    /// is not strict JSON with an object or array at the top (text that only starts like JSON stays a value position).
    /// </summary>
    public static HashSet<int>? InKeysOfUndeclaredJson(ReadOnlySpan<byte> data, List<Substitutor.PlaceholderMatch> matches)
    {
        // A body without a JSON media type that is nevertheless strict JSON with an object or array at the top (the
        // first byte after a BOM and whitespace is '{' or '['): its object keys are names, as in declared JSON. Any
        // other such body (text that only starts like JSON) stays a value position. Two linear passes at most.
        var start = data.StartsWith("\uFEFF"u8) ? 3 : 0;
        while (start < data.Length && data[start] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
        {
            start++;
        }

        if (start == data.Length || data[start] is not ((byte)'{' or (byte)'[') || !StrictJson.TryReadValueStrings(data, []))
        {
            return null;
        }

        return InJsonKeys(data, matches);
    }

    /// <summary>
    /// Secrets whose placeholder is not inside a JSON string value. The body is read as strict JSON (RFC 8259: one or
    /// more values separated by whitespace, as NDJSON and JSON text sequences send them; a UTF-8 BOM at the start):
    /// a placeholder is in a value position only when it lies inside a string that is a value, never inside an object
    /// key. A body that is not strict JSON (comments, unquoted or single-quoted keys or strings, trailing commas,
    /// NaN, hex numbers...) is read differently by lenient parsers (a string before a comment, or a bare word, is a
    /// key to Newtonsoft.Json or JSON5): every placeholder in it counts as a name, so the request is refused.
    /// One linear pass; the nesting is kept in a bit stack.
    /// </summary>
    public static HashSet<int> InJsonKeys(ReadOnlySpan<byte> data, List<Substitutor.PlaceholderMatch> matches)
    {
        var names = new HashSet<int>();
        var values = new List<(int Start, int End)>();
        if (!StrictJson.TryReadValueStrings(data, values))
        {
            foreach (var match in matches)
            {
                names.Add(match.Binding);
            }

            return names;
        }

        // Both lists are sorted by start and the value strings are disjoint: one merge.
        var v = 0;
        foreach (var match in matches)
        {
            while (v < values.Count && values[v].End <= match.Start)
            {
                v++;
            }

            var inValue = v < values.Count && match.Start > values[v].Start && match.Start + match.Length <= values[v].End;
            if (!inValue)
            {
                names.Add(match.Binding);
            }
        }

        return names;
    }

    /// <summary>
    /// Secrets whose placeholder is in a multipart part's header block (field name, file name, any
    /// part header) or outside any part. Without a usable boundary every placeholder counts.
    /// </summary>
    public static HashSet<int> InMultipartHeaders(ReadOnlySpan<byte> data, string contentType, List<Substitutor.PlaceholderMatch> matches)
    {
        var names = new HashSet<int>();
        var boundary = MultipartBoundary(contentType);
        if (boundary is null)
        {
            foreach (var match in matches)
            {
                names.Add(match.Binding);
            }

            return names;
        }

        // Value ranges: from the end of a part's header block to the next delimiter.
        var delimiter = Encoding.ASCII.GetBytes("--" + boundary);
        var values = new List<(int Start, int End)>();
        var at = data.IndexOf(delimiter);
        while (at >= 0)
        {
            var lineEnd = data[at..].IndexOf((byte)'\n');
            if (lineEnd < 0)
            {
                break;
            }

            // Every search stays inside this part (up to the next delimiter): linear in the body, however many parts.
            var headersStart = at + lineEnd + 1;
            var nextDelimiter = data[headersStart..].IndexOf(delimiter);
            var partEnd = nextDelimiter < 0 ? data.Length : headersStart + nextDelimiter;
            var rest = data[headersStart..partEnd];
            var crlf = rest.IndexOf("\r\n\r\n"u8);
            var lf = rest.IndexOf("\n\n"u8);
            int bodyStart;
            if (rest.StartsWith("\r\n"u8))
            {
                bodyStart = headersStart + 2;
            }
            else if (rest.StartsWith("\n"u8))
            {
                bodyStart = headersStart + 1;
            }
            else if (crlf >= 0 && (lf < 0 || crlf <= lf))
            {
                bodyStart = headersStart + crlf + 4;
            }
            else if (lf >= 0)
            {
                bodyStart = headersStart + lf + 2;
            }
            else
            {
                break;
            }

            values.Add((bodyStart, partEnd));
            at = nextDelimiter < 0 ? -1 : partEnd;
        }

        // Value ranges are sorted and disjoint: each match is located by binary search.
        var starts = values.Select(v => v.Start).ToArray();
        foreach (var match in matches)
        {
            var index = Array.BinarySearch(starts, match.Start);
            index = index >= 0 ? index : ~index - 1;
            var inValue = index >= 0 && match.Start + match.Length <= values[index].End;
            if (!inValue)
            {
                names.Add(match.Binding);
            }
        }

        return names;
    }

    private static string? MultipartBoundary(string contentType)
    {
        foreach (var parameter in contentType.Split(';').Skip(1))
        {
            var eq = parameter.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && parameter[..eq].Trim().Equals("boundary", StringComparison.OrdinalIgnoreCase))
            {
                var value = parameter[(eq + 1)..].Trim().Trim('"');
                return value.Length is > 0 and <= 70 ? value : null;
            }
        }

        return null;
    }
}
