using System.Text.RegularExpressions;

namespace ProxyGuard.Policy;

/// <summary>The kind of a secret reference.</summary>
public enum SecretReferenceKind
{
    /// <summary><c>env:NAME</c>: an environment variable of the proxy process.</summary>
    Env,

    /// <summary><c>file:PATH</c>: a file on the proxy host (relative paths are relative to the policy file's directory).</summary>
    File,

    /// <summary><c>vault:MOUNT/data/PATH#FIELD</c>: a field of a Vault KV v2 secret.</summary>
    Vault,
}

/// <summary>
/// A parsed secret reference. Never holds a secret value. This is the one grammar of secret
/// references: the policy compiler validates with it and the resolver (ProxyGuard.Secrets) resolves
/// what it parsed.
/// <list type="bullet">
/// <item><c>env:NAME</c> with NAME = <c>[A-Za-z_][A-Za-z0-9_]*</c>.</item>
/// <item><c>file:PATH</c>: a non-empty path without control characters, not ending in <c>/</c>.</item>
/// <item><c>vault:MOUNT/data/PATH#FIELD</c>: segments and field of <c>[A-Za-z0-9_.-]</c>, no empty,
/// <c>.</c> or <c>..</c> segment, at least one segment after <c>data</c>, the <c>#FIELD</c> required.</item>
/// </list>
/// </summary>
public sealed partial record SecretReference(SecretReferenceKind Kind, string Target, string? Field)
{
    /// <summary>The reference text (the same as <see cref="ToString"/>).</summary>
    public string Text => ToString();

    /// <summary>For <c>vault:</c>: the KV v2 path <c>MOUNT/data/PATH</c>; otherwise null.</summary>
    public string? VaultPath => Kind == SecretReferenceKind.Vault ? Target : null;

    /// <summary>Parses a reference; throws <see cref="FormatException"/> with the reason when it is not well-formed.</summary>
    public static SecretReference Parse(string text) =>
        TryParse(text ?? string.Empty, out var reference, out var error) ? reference! : throw new FormatException(error);

    /// <summary>Parses <c>env:NAME</c>, <c>file:PATH</c> or <c>vault:MOUNT/data/PATH#FIELD</c>.</summary>
    public static bool TryParse(string text, out SecretReference? reference, out string? error)
    {
        reference = null;
        error = null;
        ArgumentNullException.ThrowIfNull(text);
        if (text.StartsWith("env:", StringComparison.Ordinal))
        {
            var name = text[4..];
            if (!EnvName().IsMatch(name))
            {
                error = $"invalid secret reference '{text}': 'env:' must be followed by a variable name ([A-Za-z_][A-Za-z0-9_]*)";
                return false;
            }

            reference = new SecretReference(SecretReferenceKind.Env, name, null);
            return true;
        }

        if (text.StartsWith("file:", StringComparison.Ordinal))
        {
            var path = text[5..];
            if (path.Length == 0 || path.Any(char.IsControl) || path.EndsWith('/'))
            {
                error = $"invalid secret reference '{text}': 'file:' must be followed by a file path";
                return false;
            }

            reference = new SecretReference(SecretReferenceKind.File, path, null);
            return true;
        }

        if (text.StartsWith("vault:", StringComparison.Ordinal))
        {
            var match = VaultReference().Match(text);
            if (!match.Success)
            {
                error = $"invalid secret reference '{text}': expected 'vault:MOUNT/data/PATH#FIELD' (KV v2)";
                return false;
            }

            foreach (var segment in match.Groups["path"].Value.Split('/'))
            {
                if (segment is "." or "..")
                {
                    error = $"invalid secret reference '{text}': a vault path segment may not be '.' or '..'";
                    return false;
                }
            }

            reference = new SecretReference(SecretReferenceKind.Vault, match.Groups["path"].Value, match.Groups["field"].Value);
            return true;
        }

        error = "expected a secret reference ('env:NAME', 'file:PATH' or 'vault:MOUNT/data/PATH#FIELD'); literal secrets are not allowed in the policy file";
        return false;
    }

    /// <summary>The reference as written in the policy (safe to print: it names the secret, it is not the secret).</summary>
    public override string ToString() => Kind switch
    {
        SecretReferenceKind.Env => "env:" + Target,
        SecretReferenceKind.File => "file:" + Target,
        _ => "vault:" + Target + "#" + Field,
    };

    [GeneratedRegex(@"\A[A-Za-z_][A-Za-z0-9_]*\z")]
    private static partial Regex EnvName();

    [GeneratedRegex(@"\Avault:(?<path>[A-Za-z0-9_.-]+/data(/[A-Za-z0-9_.-]+)+)#(?<field>[A-Za-z0-9_.-]+)\z")]
    private static partial Regex VaultReference();
}
