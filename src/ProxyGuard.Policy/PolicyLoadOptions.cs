namespace ProxyGuard.Policy;

/// <summary>Options for <see cref="PolicyLoader"/>.</summary>
public sealed class PolicyLoadOptions
{
    /// <summary>
    /// Called for every secret reference (<c>clients[].token</c>, <c>secrets[].value</c>) whose syntax is valid.
    /// Returns <c>null</c> when the reference resolves, otherwise an error message that is reported at the
    /// value's position. <c>null</c>: only the syntax is checked.
    /// </summary>
    public Func<string, string?>? SecretReferenceValidator { get; init; }

    /// <summary>Refuse policy files writable by group or others (Unix only). Default <c>true</c>.</summary>
    public bool CheckFilePermissions { get; init; } = true;

    /// <summary>
    /// Detector ids known to the content scanner. When set, <c>content.builtin</c> and <c>content.exempt[].detectors</c>
    /// entries must name one of these (or a <c>content.rules[].name</c>). <c>null</c>: only the id syntax is checked.
    /// </summary>
    public IReadOnlyCollection<string>? KnownDetectorIds { get; init; }

    /// <summary>
    /// The longest a policy file may take to read (a FIFO, a stalled network file system). Default 5 s.
    /// </summary>
    public TimeSpan FileReadTimeout { get; init; } = IO.BoundedFile.DefaultTimeout;
}
