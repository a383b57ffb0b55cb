namespace ProxyGuard.Secrets.Resolution;

internal enum SecretReferenceKind
{
    Environment,
    File,
    Vault,
}

/// <summary>A parsed secret reference: <c>env:NAME</c>, <c>file:PATH</c>, <c>vault:MOUNT/data/PATH#FIELD</c>.</summary>
internal sealed record SecretReference(string Text, SecretReferenceKind Kind, string Target, string? VaultPath, string? Field)
{
    /// <summary>Parses a reference or throws <see cref="SecretUnavailableException"/> saying what is wrong.</summary>
    public static SecretReference Parse(string reference)
    {
        if (string.IsNullOrWhiteSpace(reference))
        {
            throw new SecretUnavailableException(reference ?? string.Empty, "empty secret reference");
        }

        var colon = reference.IndexOf(':', StringComparison.Ordinal);
        var scheme = colon < 0 ? string.Empty : reference[..colon];
        var rest = colon < 0 ? string.Empty : reference[(colon + 1)..];
        switch (scheme)
        {
            case "env":
                if (rest.Length == 0 || rest.Contains('=', StringComparison.Ordinal) || rest.Any(char.IsWhiteSpace))
                {
                    throw new SecretUnavailableException(reference, "expected env:NAME with a variable name");
                }

                return new SecretReference(reference, SecretReferenceKind.Environment, rest, null, null);
            case "file":
                if (rest.Length == 0)
                {
                    throw new SecretUnavailableException(reference, "expected file:PATH");
                }

                return new SecretReference(reference, SecretReferenceKind.File, rest, null, null);
            case "vault":
                return ParseVault(reference, rest);
            default:
                throw new SecretUnavailableException(reference, "unknown reference scheme; expected env:NAME, file:PATH or vault:MOUNT/data/PATH#FIELD");
        }
    }

    private static SecretReference ParseVault(string reference, string rest)
    {
        var hash = rest.LastIndexOf('#');
        if (hash <= 0 || hash == rest.Length - 1)
        {
            throw new SecretUnavailableException(reference, "expected vault:MOUNT/data/PATH#FIELD (the #FIELD is required)");
        }

        var path = rest[..hash].Trim('/');
        var field = rest[(hash + 1)..];
        var segments = path.Split('/');
        var dataIndex = Array.IndexOf(segments, "data");
        if (dataIndex < 1 || dataIndex == segments.Length - 1)
        {
            throw new SecretUnavailableException(reference, "expected a KV v2 path MOUNT/data/PATH (e.g. vault:secret/data/ci/github#token)");
        }

        if (segments.Any(s => s.Length == 0 || s == "." || s == ".."))
        {
            throw new SecretUnavailableException(reference, "vault path has an empty, '.' or '..' segment");
        }

        return new SecretReference(reference, SecretReferenceKind.Vault, path, path, field);
    }
}
