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

/// <summary>A parsed secret reference. Never holds a secret value.</summary>
public sealed partial record SecretReference(SecretReferenceKind Kind, string Target, string? Field)
{
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
