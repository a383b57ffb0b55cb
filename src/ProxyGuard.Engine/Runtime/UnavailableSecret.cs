namespace ProxyGuard.Engine.Runtime;

/// <summary>A policy secret whose value could not be resolved: requests carrying its placeholder fail closed.</summary>
internal sealed record UnavailableSecret(string Name, string Placeholder, string Reason);
