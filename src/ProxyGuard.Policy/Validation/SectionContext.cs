namespace ProxyGuard.Policy.Validation;

/// <summary>What every section reader shares: the node reader (diagnostics), the load options and the policy's directory.</summary>
internal sealed record SectionContext(NodeReader R, PolicyLoadOptions Options, string BaseDirectory);
