using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ProxyGuard.Secrets;

/// <summary>
/// A real secret value. It renders itself as <c>[REDACTED]</c> everywhere (ToString, debugger,
/// JSON); <see cref="Reveal"/> is the only way to read it. The value is held as UTF-8 bytes, and a
/// string is made only when <see cref="Reveal"/> is called. A value resolved from Vault is a live
/// handle: <see cref="Reveal"/> returns the current cached value and throws
/// <see cref="SecretUnavailableException"/> once the cache is past its TTL plus grace and Vault
/// could not refresh it (fail closed).
/// </summary>
[DebuggerDisplay("[REDACTED]")]
[DebuggerTypeProxy(typeof(RedactedDebugView))]
[JsonConverter(typeof(SecretValueJsonConverter))]
public sealed class SecretValue
{
    /// <summary>The text every secret-bearing type renders instead of a value.</summary>
    public const string Redacted = "[REDACTED]";

    [DebuggerBrowsable(DebuggerBrowsableState.Never)]
    private readonly byte[]? _value;

    [DebuggerBrowsable(DebuggerBrowsableState.Never)]
    private readonly ISecretSource? _source;

    /// <summary>Wraps a value obtained elsewhere (tests, values the host already holds).</summary>
    public SecretValue(string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(value);
        _value = Encoding.UTF8.GetBytes(value);
    }

    internal SecretValue(ISecretSource source)
    {
        _source = source;
    }

    /// <summary>The real value. Call it only at the moment of use; never store or log the result.</summary>
    /// <exception cref="SecretUnavailableException">A live (Vault) value expired and cannot be refreshed.</exception>
    public string Reveal() => _value is not null ? Encoding.UTF8.GetString(_value) : _source!.Reveal();

    /// <summary>
    /// True when <paramref name="candidate"/> (UTF-8) is the value, compared in constant time for inputs of the
    /// value's length; no string of the value is made.
    /// </summary>
    /// <exception cref="SecretUnavailableException">A live (Vault) value expired and cannot be refreshed.</exception>
    public bool FixedTimeEquals(ReadOnlySpan<byte> candidate)
    {
        if (_value is not null)
        {
            return CryptographicOperations.FixedTimeEquals(_value, candidate);
        }

        var current = _source!.RevealUtf8();
        try
        {
            return CryptographicOperations.FixedTimeEquals(current, candidate);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(current);
        }
    }

    /// <summary>
    /// For a live (Vault) value: fetches it again when it is past its TTL (or was never fetched), as
    /// the resolver does; within the grace a failed fetch is tolerated. <see cref="Reveal"/> never
    /// fetches synchronously, so a caller that finds <see cref="IsAvailable"/> false (e.g. after a
    /// quiet period longer than TTL + grace) calls this before revealing. Completes at once for a
    /// plain value.
    /// </summary>
    /// <exception cref="SecretUnavailableException">Vault cannot provide a usable value.</exception>
    public ValueTask EnsureFreshAsync(CancellationToken ct) => _source is null ? ValueTask.CompletedTask : _source.EnsureAsync(ct);

    /// <summary>True when <see cref="Reveal"/> would currently succeed.</summary>
    public bool IsAvailable => _value is not null || _source!.IsAvailable;

    /// <summary>
    /// A copy of the UTF-8 bytes of the last value known, even if expired (used for scanning and
    /// scrubbing, which must keep catching a value the sandbox could still have seen), or null if
    /// never fetched. The caller clears it after use.
    /// </summary>
    internal byte[]? PeekUtf8() => _value is not null ? (byte[])_value.Clone() : _source!.PeekUtf8();

    /// <summary>Changes whenever the value behind this handle changes (a Vault refresh with a new value).</summary>
    internal long Version => _source?.Version ?? 0;

    /// <inheritdoc />
    public override string ToString() => Redacted;

    private sealed class RedactedDebugView
    {
        public RedactedDebugView(SecretValue value)
        {
            _ = value;
        }

        public string Value => Redacted;
    }
}

/// <summary>Where a live <see cref="SecretValue"/> gets its value from.</summary>
internal interface ISecretSource
{
    string Reveal();

    /// <summary>As <see cref="Reveal"/>, as a copy of the UTF-8 bytes (the caller clears it).</summary>
    byte[] RevealUtf8();

    bool IsAvailable { get; }

    byte[]? PeekUtf8();

    long Version { get; }

    ValueTask EnsureAsync(CancellationToken ct);
}

/// <summary>Writes <c>"[REDACTED]"</c>; refuses to read (a secret is never deserialised).</summary>
internal sealed class SecretValueJsonConverter : JsonConverter<SecretValue>
{
    public override SecretValue Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new JsonException("SecretValue cannot be deserialised.");

    public override void Write(Utf8JsonWriter writer, SecretValue value, JsonSerializerOptions options) =>
        writer.WriteStringValue(SecretValue.Redacted);
}
