namespace ProxyGuard.Audit;

/// <summary>Settings of an <see cref="EventStore"/>.</summary>
public sealed class EventStoreOptions
{
    /// <summary>Bounded queue between producers and the single writer. The last eighth is reserved for deny events.</summary>
    public int QueueCapacity { get; init; } = 65536;

    /// <summary>Longest time an event waits in an open batch before the batch is committed.</summary>
    public TimeSpan BatchInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Most events committed in one transaction.</summary>
    public int MaxBatch { get; init; } = 2048;

    /// <summary>Events older than this are deleted by compaction; null keeps them forever.</summary>
    public TimeSpan? RetainFor { get; init; } = TimeSpan.FromDays(30);

    /// <summary>At most this many (newest) events are kept; null for no limit.</summary>
    public long? MaxEvents { get; init; } = 5_000_000;

    /// <summary>Oldest events are deleted while the database's used pages exceed this many bytes; null for no limit.</summary>
    public long? MaxBytes { get; init; }

    /// <summary>How often background compaction runs (it also runs once when the store opens).</summary>
    public TimeSpan CompactionInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Rows deleted per compaction transaction, so writes interleave with compaction.</summary>
    public int CompactionChunk { get; init; } = 5000;

    /// <summary>
    /// With a central event store, this store is its outbox: retention never deletes an event not yet shipped, and
    /// once more than this many committed events wait unshipped the store refuses new events (requests fail closed)
    /// until shipping catches up. Null: no central store.
    /// </summary>
    public long? MaxUnshipped { get; init; }

    /// <summary>Signed checkpoints of the chain (Ed25519); null: none.</summary>
    public CheckpointOptions? Checkpoints { get; init; }

    /// <summary>Clock for event time stamps, retention cut-offs and the compaction timer.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>When and with which key the store signs checkpoints of its chain.</summary>
public sealed class CheckpointOptions
{
    /// <summary>The Ed25519 private key (PEM); null: <c>checkpoint.key</c> in the data directory, created on first use.</summary>
    public string? KeyFile { get; init; }

    /// <summary>The replica id the checkpoints name; null: the one in the data directory (<c>replica.id</c>, created on first use).</summary>
    public string? ReplicaId { get; init; }

    /// <summary>A checkpoint after this many new events (in the commit that reaches the count).</summary>
    public int EveryEvents { get; init; } = 1000;

    /// <summary>A checkpoint this often when there are new events (and one when the store closes).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMinutes(1);
}
