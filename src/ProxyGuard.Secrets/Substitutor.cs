// Over 400 lines: the substitutor is the one public surface of secrets on the request and response
// paths (one call per position); its position parsing lives in ValuePositions, matching in
// ProxyGuard.Inspection.Matching. Splitting it further would split one contract across files.
using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ProxyGuard.Inspection;
using ProxyGuard.Inspection.Matching;
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
    private readonly RealValueMatcher _placeholderMatcher;
    private readonly SecretHistory? _history;
    private readonly object _buildGate = new();
    private volatile MatcherState _matcherState;

    public Substitutor(IReadOnlyList<SecretBinding> bindings)
        : this(bindings, null)
    {
    }

    /// <summary>
    /// Builds the substitutor of one policy snapshot. With a <paramref name="history"/> (the resolver's,
    /// which outlives snapshots) the current value of each secret is recorded there, and values that
    /// were current before a rotation stay scrubbed and detected for the history's grace period.
    /// </summary>
    public Substitutor(IReadOnlyList<SecretBinding> bindings, SecretHistory? history)
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
        _placeholderMatcher = new RealValueMatcher(_placeholderBytes.Select((p, i) => new KnownValue(i, p)));
        _history = history;
        _matcherState = BuildMatcher(null);
    }

    /// <summary>A substitutor without secrets.</summary>
    public static Substitutor Empty { get; } = new([]);

    public bool IsEmpty => _bindings.Length == 0;

    public IReadOnlyList<SecretBinding> Bindings => _bindings;

    /// <summary>Header substitution toward an intercepted (verified TLS) destination; see <see cref="SubstituteHeader(string, string, SubstitutionTarget)"/>.</summary>
    public SubstitutionResult SubstituteHeader(string headerName, string value, string host) =>
        SubstituteHeader(headerName, value, new SubstitutionTarget(host, VerifiedTls: true));

    /// <summary>
    /// Substitutes placeholders in one header (call it once per header field, with its name). The value
    /// is a value position: the placeholder anywhere in it is replaced raw (<c>Bearer</c>, <c>token</c>,
    /// <c>x-api-key</c>...). <c>Authorization</c>/<c>Proxy-Authorization</c> <c>Basic</c>: the credentials
    /// are decoded, the placeholder replaced in the user or password part, and re-encoded. <c>Cookie</c>:
    /// only cookie values are value positions. A placeholder in the header name or a cookie name (in
    /// any encoding) is <see cref="SubstitutionReasons.PlaceholderPosition"/>; toward a host its secret
    /// is not bound to, or when headers are not in its <c>in</c>, <see cref="SubstitutionReasons.SecretMisuse"/>;
    /// over plain HTTP without <c>allow_plain_http</c>, <see cref="SubstitutionReasons.PlainHttp"/>.
    /// On any misuse nothing is substituted.
    /// </summary>
    public SubstitutionResult SubstituteHeader(string headerName, string value, SubstitutionTarget target)
    {
        ArgumentNullException.ThrowIfNull(headerName);
        value ??= string.Empty;
        if (_bindings.Length == 0)
        {
            return SubstitutionResult.Unchanged(value);
        }

        var inName = CheckUnsubstituted(headerName, target);
        if (inName.IsMisuse)
        {
            return inName with { Value = value };
        }

        if (value.Length == 0)
        {
            return SubstitutionResult.Unchanged(value);
        }

        if (headerName.Equals("Cookie", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var pair in value.Split(';', ','))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                var name = eq < 0 ? pair : pair[..eq];
                var misuse = CheckUnsubstituted(name, target);
                if (misuse.IsMisuse)
                {
                    return misuse with { Value = value };
                }
            }
        }

        if (IsAuthorizationHeader(headerName) && TryDecodeBasic(value, out var prefix, out var credentials))
        {
            var inCredentials = FoundIn(credentials);
            if (inCredentials.Count > 0)
            {
                var misuse = Check(inCredentials, target, b => b.InHeaders, nameIndices: null);
                if (misuse is not null)
                {
                    return misuse with { Value = value };
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

        var misused = Check(found, target, b => b.InHeaders, nameIndices: null);
        if (misused is not null)
        {
            return misused with { Value = value };
        }

        var result = value;
        foreach (var index in found)
        {
            result = result.Replace(_bindings[index].Placeholder, _bindings[index].Value.Reveal(), StringComparison.Ordinal);
        }

        return new SubstitutionResult(result, Names(found), null);
    }

    /// <summary>Query substitution toward an intercepted (verified TLS) destination; see <see cref="SubstituteQuery(string, SubstitutionTarget)"/>.</summary>
    public SubstitutionResult SubstituteQuery(string rawQuery, string host) =>
        SubstituteQuery(rawQuery, new SubstitutionTarget(host, VerifiedTls: true));

    /// <summary>
    /// Substitutes placeholders in a raw query string (with or without the leading '?'), raw or
    /// percent-encoded (<c>%50G_...</c>), in parameter values only. A placeholder in a parameter name
    /// (the part before the first '=' of a '&amp;'-separated pair, or a pair without '=') is
    /// <see cref="SubstitutionReasons.PlaceholderPosition"/>. The real value is written
    /// percent-encoded (RFC 3986 unreserved characters kept); the rest of the query is kept byte for byte.
    /// </summary>
    public SubstitutionResult SubstituteQuery(string rawQuery, SubstitutionTarget target)
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
        var names = ValuePositions.InFormNames(raw, matches);
        var misused = Check(indices, target, b => b.InQuery, names);
        if (misused is not null)
        {
            return misused with { Value = rawQuery };
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
        SubstituteBody(body, null, new SubstitutionTarget(host, VerifiedTls: true), out newBody);

    /// <summary>Body substitution toward an intercepted (verified TLS) destination; see <see cref="SubstituteBody(ReadOnlySpan{byte}, string?, SubstitutionTarget, out byte[]?)"/>.</summary>
    public SubstitutionResult SubstituteBody(ReadOnlySpan<byte> body, string host, string? contentType, out byte[]? newBody) =>
        SubstituteBody(body, contentType, new SubstitutionTarget(host, VerifiedTls: true), out newBody);

    /// <summary>
    /// Substitutes placeholders in a request body, only for secrets with <c>body</c> in their
    /// <c>in</c> and toward their hosts. A placeholder of a secret whose body substitution is not
    /// opted in, or toward another host, is misuse (the request is denied, nothing is sent).
    /// Value positions only: form fields' values (<c>application/x-www-form-urlencoded</c>), JSON
    /// string values (not object keys), multipart part bodies (not the part headers, so neither the
    /// field name nor the file name), anything in other bodies except the keys of a body that is strict
    /// JSON whatever its declared type (servers that parse JSON regardless of the type read them as keys). A placeholder in a name position is
    /// <see cref="SubstitutionReasons.PlaceholderPosition"/>; a multipart body whose boundary cannot be
    /// read is all name position (fail closed).
    /// The value is encoded for the content type: form percent-encoded, JSON (<c>application/json</c>,
    /// <c>+json</c>) JSON-string-escaped, otherwise raw UTF-8; a percent-encoded placeholder always
    /// gets a percent-encoded value.
    /// </summary>
    public SubstitutionResult SubstituteBody(ReadOnlySpan<byte> body, string? contentType, SubstitutionTarget target, out byte[]? newBody)
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
        var kind = ClassifyContentType(contentType);
        var names = kind switch
        {
            BodyKind.Form => ValuePositions.InFormNames(body, matches),
            BodyKind.Json => ValuePositions.InJsonKeys(body, matches),
            BodyKind.Multipart => ValuePositions.InMultipartHeaders(body, contentType!, matches),
            _ => ValuePositions.InKeysOfUndeclaredJson(body, matches),
        };
        var misused = Check(indices, target, b => b.InBody, names);
        if (misused is not null)
        {
            return misused with { Value = string.Empty };
        }

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
    /// True when a placeholder occurs anywhere in the text, in any encoding the real-value matcher
    /// knows (raw, percent-, JSON-, HTML-escaped, base64/base64url at any alignment, line-wrapped).
    /// </summary>
    public bool ContainsPlaceholder(string text) => FindPlaceholderAnywhere(text) is not null;

    /// <inheritdoc cref="ContainsPlaceholder(string)"/>
    public bool ContainsPlaceholder(ReadOnlySpan<byte> data) => FindPlaceholderAnywhere(data) is not null;

    /// <summary>Name of a secret whose placeholder occurs in the text in any encoding (see <see cref="ContainsPlaceholder(string)"/>), or null.</summary>
    public string? FindPlaceholderAnywhere(string text)
    {
        if (string.IsNullOrEmpty(text) || _bindings.Length == 0)
        {
            return null;
        }

        var buffer = RentUtf8(text, out var length);
        try
        {
            return FindPlaceholderAnywhere(buffer.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    /// <inheritdoc cref="FindPlaceholderAnywhere(string)"/>
    public string? FindPlaceholderAnywhere(ReadOnlySpan<byte> data) =>
        _placeholderMatcher.TryFindFirst(data, out var owner) ? _bindings[owner].Name : null;

    /// <summary>
    /// For a position that is never substituted (method, path, host, fragment, header name, cookie
    /// name, user name in a URL): a placeholder there in any encoding is a misuse, with
    /// <see cref="SubstitutionReasons.PlaceholderPosition"/> when the destination is a host the secret
    /// is bound to, else <see cref="SubstitutionReasons.SecretMisuse"/>. Unchanged when none.
    /// </summary>
    public SubstitutionResult CheckUnsubstituted(string text, SubstitutionTarget target)
    {
        if (string.IsNullOrEmpty(text) || _bindings.Length == 0)
        {
            return SubstitutionResult.Unchanged(text ?? string.Empty);
        }

        var buffer = RentUtf8(text, out var length);
        try
        {
            var result = CheckUnsubstituted(buffer.AsSpan(0, length), target);
            return result.IsMisuse ? result with { Value = text } : SubstitutionResult.Unchanged(text);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    /// <inheritdoc cref="CheckUnsubstituted(string, SubstitutionTarget)"/>
    public SubstitutionResult CheckUnsubstituted(ReadOnlySpan<byte> data, SubstitutionTarget target)
    {
        if (!_placeholderMatcher.TryFindFirst(data, out var owner))
        {
            return SubstitutionResult.Unchanged(string.Empty);
        }

        var binding = _bindings[owner];
        return SubstitutionResult.Misuse(string.Empty, binding.Name,
            binding.AppliesToHost(target.Host) ? SubstitutionReasons.PlaceholderPosition : SubstitutionReasons.SecretMisuse);
    }

    /// <summary>
    /// Name of the first secret whose placeholder appears in the text (raw or percent-encoded), or null.
    /// The engine uses it for locations where substitution never happens (path, host names): a
    /// placeholder there is misuse.
    /// </summary>
    public string? FindPlaceholder(string text)
    {
        if (string.IsNullOrEmpty(text) || _bindings.Length == 0)
        {
            return null;
        }

        var buffer = RentUtf8(text, out var length);
        try
        {
            return FindPlaceholder(buffer.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

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
    /// Name of a secret whose real value (current, or previous within the rotation grace) appears in
    /// the text in any form the shared real-value matcher knows: raw, JSON-, percent- or HTML-escaped,
    /// base64 or base64url (standalone, inside a larger base64 string at any alignment, line-wrapped);
    /// or null. Run it on what the sandbox sent, before substitution: a hit means the sandbox holds a
    /// real value → deny.
    /// </summary>
    public string? FindRealValue(string text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        var buffer = RentUtf8(text, out var length);
        try
        {
            return FindRealValue(buffer.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    /// <summary>The text as UTF-8 in a pooled buffer (return it cleared: it may hold what the sandbox or upstream sent).</summary>
    private static byte[] RentUtf8(string text, out int length)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(text.Length));
        length = Encoding.UTF8.GetBytes(text, buffer);
        return buffer;
    }

    /// <inheritdoc cref="FindRealValue(string)"/>
    public string? FindRealValue(ReadOnlySpan<byte> data) =>
        CurrentMatcher().Matcher.TryFindFirst(data, out var owner) ? _bindings[owner].Name : null;

    /// <summary>
    /// The values the content scanner's <c>vault-secret</c> detector looks for: the same set the shared real-value
    /// matcher is built from (each bound secret's current value and its previous values still within the rotation
    /// grace). Building it records the current values in the rotation history, as the matcher does.
    /// </summary>
    public IReadOnlyList<KnownSecret> KnownSecrets()
    {
        CurrentMatcher();
        var known = new List<KnownSecret>();
        var ignored = DateTimeOffset.MaxValue;
        foreach (var binding in _bindings)
        {
            var values = new List<byte[]>();
            if (binding.Value.PeekUtf8() is { } current)
            {
                values.Add(current);
            }

            if (_history is not null)
            {
                values.AddRange(_history.Previous(binding.Name, ref ignored));
            }

            foreach (var value in values)
            {
                known.Add(new KnownSecret(binding.Name, Encoding.UTF8.GetString(value)));
                Array.Clear(value);
            }
        }

        return known;
    }

    /// <summary>Replaces real values (every form, see <see cref="FindRealValue(string)"/>) by their placeholders (response status line, header names and values, trailers).</summary>
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

        var buffer = RentUtf8(text, out var length);
        try
        {
            var scrubbed = state.Matcher.Replace(buffer.AsSpan(0, length), _placeholderBytes);
            return scrubbed is null ? text : Encoding.UTF8.GetString(scrubbed);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    /// <summary>Scrubs a whole (decoded) body; null when nothing changed.</summary>
    public byte[]? ScrubBody(ReadOnlySpan<byte> body) => CurrentMatcher().Matcher.Replace(body, _placeholderBytes);

    /// <summary>
    /// A stream that scrubs on the fly. If <paramref name="inner"/> is readable, reading the returned
    /// stream yields inner's content scrubbed; otherwise writes to the returned stream reach inner
    /// scrubbed and the held-back tail is written on dispose. A window of
    /// <see cref="LongestEncodedValue"/> minus one byte is held back between chunks, so a value split
    /// across reads (in any of its forms) is still caught; memory stays bounded by the chunk size plus
    /// that window. Disposing it disposes inner.
    /// </summary>
    public Stream CreateScrubbingStream(Stream inner) => CreateScrubbingStream(inner, leaveOpen: false);

    /// <inheritdoc cref="CreateScrubbingStream(Stream)"/>
    public Stream CreateScrubbingStream(Stream inner, bool leaveOpen)
    {
        ArgumentNullException.ThrowIfNull(inner);
        return new ScrubbingStream(inner, CurrentMatcher().Matcher, _placeholderBytes, leaveOpen);
    }

    /// <summary>The longest input one encoded real value can span (the streaming window is one less).</summary>
    public int LongestEncodedValue => CurrentMatcher().Matcher.Window;

    /// <inheritdoc />
    public override string ToString() => $"Substitutor {{ Secrets = [{string.Join(", ", _bindings.Select(b => b.Name))}] }}";

    private enum BodyKind
    {
        Raw,
        Form,
        Json,
        Multipart,
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

        if (mediaType.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase))
        {
            return BodyKind.Multipart;
        }

        // Any JSON flavour (application/json, text/json, +json, x-ndjson, jsonl, json-seq): object keys are names.
        return mediaType.Contains("json", StringComparison.OrdinalIgnoreCase)
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

    /// <summary>
    /// The credentials of a <c>Basic</c> value (<c>user:password</c>) decoded exactly as substitution decodes them (a
    /// space or tab after the scheme, whitespace inside the base64, missing padding), or null. Callers that must see
    /// what substitution sees (the secret gate's checks) use this one decoder.
    /// </summary>
    public static string? DecodeBasicCredentials(string value) => TryDecodeBasic(value, out _, out var credentials) ? credentials : null;

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

    /// <summary>
    /// The misuse among the placeholders found, or null. Order: wrong host or location
    /// (<c>secret-misuse</c>), then a name position (<c>placeholder-position</c>), then plain HTTP.
    /// </summary>
    private SubstitutionResult? Check(List<int> indices, SubstitutionTarget target, Func<SecretBinding, bool> location, HashSet<int>? nameIndices)
    {
        foreach (var index in indices)
        {
            var binding = _bindings[index];
            if (!location(binding) || !binding.AppliesToHost(target.Host))
            {
                return SubstitutionResult.Misuse(string.Empty, binding.Name);
            }
        }

        if (nameIndices is { Count: > 0 })
        {
            foreach (var index in indices)
            {
                if (nameIndices.Contains(index))
                {
                    return SubstitutionResult.Misuse(string.Empty, _bindings[index].Name, SubstitutionReasons.PlaceholderPosition);
                }
            }
        }

        if (!target.VerifiedTls)
        {
            foreach (var index in indices)
            {
                if (!_bindings[index].AllowPlainHttp)
                {
                    return SubstitutionResult.Misuse(string.Empty, _bindings[index].Name, SubstitutionReasons.PlainHttp);
                }
            }
        }

        return null;
    }

    private IReadOnlyList<string> Names(List<int> indices) => indices.Select(i => _bindings[i].Name).ToArray();

    internal readonly record struct PlaceholderMatch(int Start, int Length, int Binding);

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
            // Plain runs are copied in bulk; only the %XX triples are remembered (their decoded positions), so a
            // decoded position d maps back to d + 2 x (triples before d). Linear, and no per-byte map.
            var decoded = ArrayPool<byte>.Shared.Rent(raw.Length);
            var triples = new List<int>();
            try
            {
                var count = 0;
                var i = 0;
                while (i < raw.Length)
                {
                    var next = raw[i..].IndexOf((byte)'%');
                    var plainEnd = next < 0 ? raw.Length : i + next;
                    raw[i..plainEnd].CopyTo(decoded.AsSpan(count));
                    count += plainEnd - i;
                    i = plainEnd;
                    if (i >= raw.Length)
                    {
                        break;
                    }

                    if (i + 2 < raw.Length && IsHex(raw[i + 1]) && IsHex(raw[i + 2]))
                    {
                        var value = (HexValue(raw[i + 1]) << 4) | HexValue(raw[i + 2]);
                        triples.Add(count);
                        decoded[count++] = value < 0x80 ? (byte)value : (byte)0xFF;
                        i += 3;
                    }
                    else
                    {
                        decoded[count++] = raw[i];
                        i++;
                    }
                }

                int RawAt(int position)
                {
                    var before = triples.BinarySearch(position);
                    return position + (2 * (before < 0 ? ~before : before));
                }

                var view = decoded.AsSpan(0, count);
                for (var b = 0; b < _bindings.Length; b++)
                {
                    var pattern = _placeholderBytes[b];
                    var start = 0;
                    int offset;
                    while ((offset = view[start..].IndexOf(pattern)) >= 0)
                    {
                        var first = start + offset;
                        var rawStart = RawAt(first);
                        matches.Add(new PlaceholderMatch(rawStart, RawAt(first + pattern.Length) - rawStart, b));
                        start = first + pattern.Length;
                    }
                }
            }
            finally
            {
                decoded.AsSpan(0, raw.Length).Clear();
                ArrayPool<byte>.Shared.Return(decoded);
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
        if (!IsStale(state))
        {
            return state;
        }

        lock (_buildGate)
        {
            state = _matcherState;
            if (IsStale(state))
            {
                state = BuildMatcher(state);
                _matcherState = state;
            }

            return state;
        }
    }

    private bool IsStale(MatcherState state)
    {
        for (var i = 0; i < _bindings.Length; i++)
        {
            if (state.Versions[i] != _bindings[i].Value.Version)
            {
                return true;
            }
        }

        return _history is not null
            && (state.HistoryVersion != _history.Version || _history.TimeProvider.GetUtcNow() >= state.NextExpiry);
    }

    /// <summary>
    /// Compiles the current and remembered previous values into the shared matcher. A binding's value
    /// is recorded in the history when first seen and whenever its live value changed since
    /// <paramref name="previous"/> (never from an older snapshot's unchanged values).
    /// </summary>
    private MatcherState BuildMatcher(MatcherState? previous)
    {
        var values = new List<KnownValue>();
        var buffers = new List<byte[]>();
        var versions = new long[_bindings.Length];
        var nextExpiry = DateTimeOffset.MaxValue;
        try
        {
            for (var i = 0; i < _bindings.Length; i++)
            {
                var binding = _bindings[i];
                versions[i] = binding.Value.Version;
                var current = binding.Value.PeekUtf8();
                if (current is not null)
                {
                    buffers.Add(current);
                    AddWithTrimmed(values, i, current);
                    if (previous is null || previous.Versions[i] != versions[i])
                    {
                        _history?.Observe(binding.Name, current);
                    }
                }
            }

            var historyVersion = _history?.Version ?? 0;
            if (_history is not null)
            {
                for (var i = 0; i < _bindings.Length; i++)
                {
                    foreach (var old in _history.Previous(_bindings[i].Name, ref nextExpiry))
                    {
                        buffers.Add(old);
                        AddWithTrimmed(values, i, old);
                    }
                }

                historyVersion = _history.Version;
            }

            return new MatcherState(versions, historyVersion, nextExpiry, new RealValueMatcher(values));
        }
        finally
        {
            foreach (var buffer in buffers)
            {
                Array.Clear(buffer);
            }
        }
    }

    /// <summary>
    /// The value, and also without leading and trailing whitespace when it has some: an HTTP field parser trims a
    /// header or trailer value, so an upstream echoing the value there delivers the trimmed form.
    /// </summary>
    private static void AddWithTrimmed(List<KnownValue> values, int owner, byte[] value)
    {
        values.Add(new KnownValue(owner, value));
        var trimmed = value.AsMemory().Trim(" \t\r\n"u8);
        if (trimmed.Length != value.Length && trimmed.Length >= MinimumTrimmedLength)
        {
            values.Add(new KnownValue(owner, trimmed));
        }
    }

    /// <summary>A trimmed form shorter than this is not looked for (it would match ordinary text).</summary>
    private const int MinimumTrimmedLength = 4;

    private sealed class MatcherState(long[] versions, long historyVersion, DateTimeOffset nextExpiry, RealValueMatcher matcher)
    {
        public long[] Versions { get; } = versions;

        public long HistoryVersion { get; } = historyVersion;

        public DateTimeOffset NextExpiry { get; } = nextExpiry;

        public RealValueMatcher Matcher { get; } = matcher;
    }
}
