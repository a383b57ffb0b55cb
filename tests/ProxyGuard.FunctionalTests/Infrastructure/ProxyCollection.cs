namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>Functional tests start real processes; run the classes one after another on 2 cores.</summary>
[CollectionDefinition("proxy", DisableParallelization = true)]
public sealed class ProxyCollection
{
}
