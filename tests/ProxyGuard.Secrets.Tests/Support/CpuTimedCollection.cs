namespace ProxyGuard.Secrets.Tests.Support;

/// <summary>
/// Classes whose tests compare thread CPU times (linear scaling) run alone: run beside the other test classes, the
/// shared caches and cores made the same input cost up to 1.5x more in one measurement than in the next.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CpuTimedCollection
{
    public const string Name = "CPU-timed (not parallel)";
}
