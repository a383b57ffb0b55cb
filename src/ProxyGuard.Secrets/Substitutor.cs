using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ProxyGuard.Secrets.Matching;

namespace ProxyGuard.Secrets;

/// <summary>
/// Replaces placeholders by real values toward bound hosts (request side), detects real values sent by
/// the sandbox, and replaces real values by placeholders (response side). Immutable and thread-safe;
/// build one per policy snapshot. Methods that substitute call <see cref="SecretValue.Reveal"/> and so
/// throw <see cref="SecretUnavailableException"/> when a needed live (Vault) value has expired beyond
/// its grace: the engine must then deny the request (fail closed) and not forward it.
/// Scanning and scrubbing use the last value known, so they keep working during a Vault outage.
/// </summary>
public sealed class Substitutor
{
    private readonly SecretBinding[] _bindings;
    private readonly byte[][] _placeholderBytes;
    private volatile MatcherState _matcherState;

    public Substitutor(IReadOnlyList<SecretBinding> bindings)
    {
        ArgumentNullException.ThrowIfNull(bindings);
        _bindings = bindings.ToArray();
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < _bindings.Length; i++)
        {
            var binding = _bindings[i] ?? throw new ArgumentException("A binding is null.", nameof(bindings));
            if (string.IsNullOrEmpty(binding.Name) || !names.Add(binding.Name))
            {
                throw new ArgumentException($"Secret names must be non-empty and unique ('{binding.Name}').", nameof(bindings));
            }

            if (string.IsNullOrEmpty(binding.Placeholder))
            {
                throw new ArgumentException($"Secret '{binding.Name}' has an empty placeholder.", nameof(bindings));
            }

            for (var j = 0; j < i; j++)
            {
                if (binding.Placeholder.Contains(_bindings[j].Placeholder, StringComparison.Ordinal)
                    || _bindings[j].Placeholder.Contains(binding.Placeholder, StringComparison.Ordinal))
                {
                    throw new ArgumentException(
                        $"Placeholders of secrets '{_bindings[j].Name}' and '{binding.Name}' overlap; each must be distinct.", nameof(bindings));
                }
            }
        }

        _placeholderBytes = _bindings.Select(b => Encoding.UTF8.GetBytes(b.Placeholder)).ToArray();
        _matcherState = BuildMatcher(_bindings.Select(b => b.Value.Peek()).ToArray());
    }

    /// <summary>A substitutor without secrets.</summary>
    public static Substitutor Empty { get; } = new([]);

    public bool IsEmpty => _bindings.Length == 0;

    public IReadOnlyList<SecretBinding> Bindings => _bindings;

    /// <summary>
    /// Substitutes placeholders in one header value. Any header: the placeholder anywhere in the value
    /// is replaced raw (this covers <c>Bearer</c>, <c>token</c> and custom headers such as
    /// <c>x-api-key</c>). <c>Authorization</c>/<c>Proxy-Authorization</c> <c>Basic</c>: the credentials
    /// are decoded, the placeholder replaced in the user or password part, and re-encoded.
    /// A placeholder toward a host its secret is not bound to, or when headers are not in its
    /// <c>in</c>, is misuse: nothing is substituted.
    /// </summary>
    public SubstitutionResult SubstituteHeader(string headerName, string value, string host)
    {
        if (_bindings.Length == 0 || string.IsNullOrEmpty(value))
        {
            return SubstitutionResult.Unchanged(value);
        }

        if (IsAuthorizationHeader(headerName) && TryDecodeBasic(value, out var prefix, out var credentials))
        {
            var inCredentials = FoundIn(credentials);
            if (inCredentials.Count > 0)
            {
                var misuse = FirstMisuse(inCredentials, host, b => b.InHeaders);
                if (misuse is not null)
                {
                    return SubstitutionResult.Misuse(value, misuse);
                }

                foreach (var index in inCredentials)
                {
                    credentials = credentials.Replace(_bindings[index].Placeholder, _bindings[index].Value.Reveal(), StringComparison.Ordinal);
                }

                var encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials));
                return new SubstitutionResult(prefix + encoded, Names(inCredentials), null);
            }
        }

        var found = FoundIn(value);
        if (found.Count == 0)
        {
            return SubstitutionResult.Unchanged(value);
        }

        var misused = FirstMisuse(found, host, b => b.InHeaders);
        if (misused is not null)
        {
            return SubstitutionResult.Misuse(value, misused);
        }

        var result = value;
        foreach (var index in found)
        {
            result = result.Replace(_bindings[index].Placeholder, _bindings[index].Value.Reveal(), StringComparison.Ordinal);
        }

        return new SubstitutionResult(result, Names(found), null);
    }

    /// <summary>
    /// Substitutes placeholders in a raw query string (with or without the leading '?'), in names and
    /// values, raw or percent-encoded (<c>%50G_...</c>). The real value is written percent-encoded
    /// (RFC 3986 unreserved characters kept); the rest of the query is kept byte for byte.
    /// </summary>
    public SubstitutionResult SubstituteQuery(string rawQuery, string host)
    {
        if (_bindings.Length == 0 || string.IsNullOrEmpty(rawQuery))
        {
            return SubstitutionResult.Unchanged(rawQuery);
        }

        var raw = Encoding.Latin1.GetBytes(rawQuery);
        var matches = FindPlaceholders(raw);
        if (matches.Count == 0)
        {
            return SubstitutionResult.Unchanged(rawQuery);
        }

        var indices = matches.Select(m => m.Binding).Distinct().ToList();
        var misused = FirstMisuse(indices, host, b => b.InQuery);
        if (misused is not null)
        {
            return SubstitutionResult.Misuse(rawQuery, misused);
        }

        var builder = new StringBuilder(rawQuery.Length + 64);
        var copied = 0;
        foreach (var match in matches)
        {
            builder.Append(rawQuery, copied, match.Start - copied);
            builder.Append(Uri.EscapeDataString(_bindings[match.Binding].Value.Reveal()));
            copied = match.Start + match.Length;
        }

        builder.Append(rawQuery, copied, rawQuery.Length - copied);
        return new SubstitutionResult(builder.ToString(), Names(indices), null);
    }

    /// <summary>
    /// Body substitution without a content type: placeholders are replaced by the raw UTF-8 value
    /// (percent-encoded where the placeholder itself was percent-encoded). See the overload with a
    /// content type. The returned <see cref="SubstitutionResult.Value"/> is empty; the new body is
    /// <paramref name="newBody"/> (null when unchanged; re-frame Content-Length).
    /// </summary>
    public SubstitutionResult SubstituteBody(ReadOnlySpan<byte> body, string host, out byte[]? newBody) =>
        SubstituteBody(body, host, null, out newBody);

    /// <summary>
    /// Substitutes placeholders in a request body, only for secrets with <c>body</c> in their
    /// <c>in</c> and toward their hosts. A placeholder of a secret whose body substitution is not
    /// opted in, or toward another host, is misuse (the request is denied, nothing is sent).
    /// The value is encoded for the content type: <c>application/x-www-form-urlencoded</c>
    /// percent-encoded, JSON (<c>application/json</c>, <c>+json</c>) JSON-string-escaped, otherwise raw
    /// UTF-8; a percent-encoded placeholder always gets a percent-encoded value.
    /// </summary>
    public SubstitutionResult SubstituteBody(ReadOnlySpan<byte> body, string host, string? contentType, out byte[]? newBody)
    {
        newBody = null;
        if (_bindings.Length == 0 || body.IsEmpty)
        {
            return SubstitutionResult.Unchanged(string.Empty);
        }

        var matches = FindPlaceholders(body);
        if (matches.Count == 0)
        {
            return SubstitutionResult.Unchanged(string.Empty);
        }

        var indices = matches.Select(m => m.Binding).Distinct().ToList();
        var misused = FirstMisuse(indices, host, b => b.InBody);
        if (misused is not null)
        {
            return SubstitutionResult.Misuse(string.Empty, misused);
        }

        var kind = ClassifyContentType(contentType);
        using var output = new MemoryStream(body.Length + 64);
        var copied = 0;
        foreach (var match in matches)
        {
            output.Write(body[copied..match.Start]);
            var real = _bindings[match.Binding].Value.Reveal();
            var encodedPlaceholder = match.Length != _placeholderBytes[match.Binding].Length;
            var replacement = encodedPlaceholder || kind == BodyKind.Form
                ? Encoding.ASCII.GetBytes(Uri.EscapeDataString(real))
                : kind == BodyKind.Json
                    ? JsonEncodedText.Encode(real, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes.ToArray()
                    : Encoding.UTF8.GetBytes(real);
            output.Write(replacement);
            Array.Clear(replacement);
            copied = match.Start + match.Length;
        }

        output.Write(body[copied..]);
        newBody = output.ToArray();
        return new SubstitutionResult(string.Empty, Names(indices), null);
    }

    /// <summary>
    /// Name of the first secret whose placeholder appears in the text (raw or percent-encoded), or null.
    /// The engine uses it for locations where substitution never happens (path, host names): a
    /// placeholder there is misuse.
    /// </summary>
    public string? FindPlaceholder(string text) =>
        string.IsNullOrEmpty(text) || _bindings.Length == 0 ? null : FindPlaceholder(Encoding.UTF8.GetBytes(text));

    /// <inheritdoc cref="FindPlaceholder(string)"/>
    public string? FindPlaceholder(ReadOnlySpan<byte> data)
    {
        if (_bindings.Length == 0 || data.IsEmpty)
        {
            return null;
        }

        var matches = FindPlaceholders(data);
        return matches.Count == 0 ? null : _bindings[matches[0].Binding].Name;
    }

    /// <summary>
    /// Name of a secret whose real value appears in the text raw, percent-encoded, base64 or base64url
    /// (standalone, or inside a larger base64 string at any alignment), or null. Run it on what the
    /// sandbox sent, before substitution: a hit means the sandbox holds a real value → deny.
    /// </summary>
    public string? FindRealValue(string text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        var state = CurrentMatcher();
        if (state.Matcher.IsEmpty)
        {
            return null;
        }

        var match = state.Matcher.FindFirst(Encoding.UTF8.GetBytes(text));
        return match is null ? null : _bindings[match.Owner].Name;
    }

    /// <inheritdoc cref="FindRealValue(string)"/>
    public string? FindRealValue(ReadOnlySpan<byte> data)
    {
        var match = CurrentMatcher().Matcher.FindFirst(data);
        return match is null ? null : _bindings[match.Owner].Name;
    }

    /// <summary>Replaces real values (raw, percent-encoded, base64 std/url) by their placeholders (response headers).</summary>
    public string ScrubText(string text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text;
        }

        var state = CurrentMatcher();
        if (state.Matcher.IsEmpty)
        {
            return text;
        }

        var scrubbed = state.Matcher.Replace(Encoding.UTF8.GetBytes(text));
        return scrubbed is null ? text : Encoding.UTF8.GetString(scrubbed);
    }

    /// <summary>Scrubs a whole (decoded) body; null when nothing changed.</summary>
    public byte[]? ScrubBody(ReadOnlySpan<byte> body) => CurrentMatcher().Matcher.Replace(body);

    /// <summary>
    /// A stream that scrubs on the fly, for bodies over the scan limit. If <paramref name="inner"/> is
    /// readable, reading the returned stream yields inner's content scrubbed; otherwise writes to the
    /// returned stream reach inner scrubbed and the held-back tail is written on dispose. A window of
    /// the longest encoded value minus one byte is held back between chunks, so a value split across
    /// reads is still caught; memory stays bounded. Disposing it disposes inner.
    /// </summary>
    public Stream CreateScrubbingStream(Stream inner) => CreateScrubbingStream(inner, leaveOpen: false);

    /// <inheritdoc cref="CreateScrubbingStream(Stream)"/>
    public Stream CreateScrubbingStream(Stream inner, bool leaveOpen)
    {
        ArgumentNullException.ThrowIfNull(inner);
        return new ScrubbingStream(inner, CurrentMatcher().Matcher, leaveOpen);
    }

    /// <summary>Longest encoded form of any real value (the streaming window is one less).</summary>
    public int LongestEncodedValue => CurrentMatcher().Matcher.MaxLength;

    /// <inheritdoc />
    public override string ToString() => $"Substitutor {{ Secrets = [{string.Join(", ", _bindings.Select(b => b.Name))}] }}";

    private enum BodyKind
    {
        Raw,
        Form,
        Json,
    }

    private static BodyKind ClassifyContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return BodyKind.Raw;
        }

        var mediaType = contentType.Split(';', 2)[0].Trim();
        if (mediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            return BodyKind.Form;
        }

        return mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)
            ? BodyKind.Json
            : BodyKind.Raw;
    }

    private static bool IsAuthorizationHeader(string name) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase);

    private static bool TryDecodeBasic(string value, out string prefix, out string credentials)
    {
        prefix = string.Empty;
        credentials = string.Empty;
        var trimmed = value.TrimStart(' ', '\t');
        if (!trimmed.StartsWith("Basic", StringComparison.OrdinalIgnoreCase) || trimmed.Length <= 5
            || (trimmed[5] != ' ' && trimmed[5] != '\t'))
        {
            return false;
        }

        var parameter = trimmed[5..].Trim(' ', '\t');
        prefix = value[..(value.Length - trimmed.Length)] + trimmed[..5] + " ";
        if (parameter.Length == 0)
        {
            return false;
        }

        var padded = parameter.Length % 4 == 0 ? parameter : parameter.PadRight(parameter.Length + 4 - (parameter.Length % 4), '=');
        var buffer = new byte[(padded.Length / 4) * 3];
        if (!Convert.TryFromBase64String(padded, buffer, out var written))
        {
            return false;
        }

        try
        {
            credentials = new UTF8Encoding(false, true).GetString(buffer, 0, written);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        finally
        {
            Array.Clear(buffer);
        }
    }

    private List<int> FoundIn(string text)
    {
        var found = new List<int>();
        for (var i = 0; i < _bindings.Length; i++)
        {
            if (text.Contains(_bindings[i].Placeholder, StringComparison.Ordinal))
            {
                found.Add(i);
            }
        }

        return found;
    }

    private string? FirstMisuse(List<int> indices, string host, Func<SecretBinding, bool> location)
    {
        foreach (var index in indices)
        {
            var binding = _bindings[index];
            if (!location(binding) || !binding.AppliesToHost(host))
            {
                return binding.Name;
            }
        }

        return null;
    }

    private IReadOnlyList<string> Names(List<int> indices) => indices.Select(i => _bindings[i].Name).ToArray();

    private readonly record struct PlaceholderMatch(int Start, int Length, int Binding);

    /// <summary>
    /// Finds placeholders in raw bytes, seeing through percent-encoding: each byte or %XX triple is one
    /// unit; a match in the decoded units maps back to the raw span it came from.
    /// </summary>
    private List<PlaceholderMatch> FindPlaceholders(ReadOnlySpan<byte> raw)
    {
        var matches = new List<PlaceholderMatch>();
        if (raw.IndexOf((byte)'%') < 0)
        {
            for (var b = 0; b < _bindings.Length; b++)
            {
                var pattern = _placeholderBytes[b];
                var start = 0;
                int offset;
                while ((offset = raw[start..].IndexOf(pattern)) >= 0)
                {
                    matches.Add(new PlaceholderMatch(start + offset, pattern.Length, b));
                    start += offset + pattern.Length;
                }
            }
        }
        else
        {
            var decoded = new byte[raw.Length];
            var unitStart = new int[raw.Length + 1];
            var count = 0;
            var i = 0;
            while (i < raw.Length)
            {
                unitStart[count] = i;
                if (raw[i] == '%' && i + 2 < raw.Length && IsHex(raw[i + 1]) && IsHex(raw[i + 2]))
                {
                    var value = (HexValue(raw[i + 1]) << 4) | HexValue(raw[i + 2]);
                    decoded[count++] = value < 0x80 ? (byte)value : (byte)0xFF;
                    i += 3;
                }
                else
                {
                    decoded[count++] = raw[i];
                    i++;
                }
            }

            unitStart[count] = raw.Length;
            var view = decoded.AsSpan(0, count);
            for (var b = 0; b < _bindings.Length; b++)
            {
                var pattern = _placeholderBytes[b];
                var start = 0;
                int offset;
                while ((offset = view[start..].IndexOf(pattern)) >= 0)
                {
                    var first = start + offset;
                    var rawStart = unitStart[first];
                    matches.Add(new PlaceholderMatch(rawStart, unitStart[first + pattern.Length] - rawStart, b));
                    start = first + pattern.Length;
                }
            }
        }

        matches.Sort((x, y) => x.Start.CompareTo(y.Start));
        var result = new List<PlaceholderMatch>(matches.Count);
        var end = 0;
        foreach (var match in matches)
        {
            if (match.Start >= end)
            {
                result.Add(match);
                end = match.Start + match.Length;
            }
        }

        return result;
    }

    private static bool IsHex(byte b) => b is (>= (byte)'0' and <= (byte)'9') or (>= (byte)'a' and <= (byte)'f') or (>= (byte)'A' and <= (byte)'F');

    private static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;

    private MatcherState CurrentMatcher()
    {
        var state = _matcherState;
        for (var i = 0; i < _bindings.Length; i++)
        {
            if (!ReferenceEquals(state.Sources[i], _bindings[i].Value.Peek()))
            {
                state = BuildMatcher(_bindings.Select(b => b.Value.Peek()).ToArray());
                _matcherState = state;
                break;
            }
        }

        return state;
    }

    private MatcherState BuildMatcher(string?[] sources)
    {
        var patterns = new List<Pattern>();
        for (var i = 0; i < sources.Length; i++)
        {
            var source = sources[i];
            if (source is null)
            {
                continue;
            }

            foreach (var form in EncodedForms.Build(source))
            {
                patterns.Add(new Pattern(form, i, _placeholderBytes[i]));
            }
        }

        return new MatcherState(sources, new ValueMatcher(patterns));
    }

    private sealed class MatcherState(string?[] sources, ValueMatcher matcher)
    {
        public string?[] Sources { get; } = sources;

        public ValueMatcher Matcher { get; } = matcher;
    }
}
