namespace ProxyGuard.Audit.Central;

/// <summary>Settings of the central event store (PostgreSQL) a replica ships its events to and reads all events from.</summary>
public sealed class CentralStoreOptions
{
    /// <summary>The Npgsql connection string (may hold the password: never print it; use <see cref="Display"/>).</summary>
    public required string ConnectionString { get; init; }

    /// <summary>The store's address without credentials, for messages.</summary>
    public required string Display { get; init; }

    /// <summary>This replica's id: its events are keyed (replica id, local id) centrally.</summary>
    public required string ReplicaId { get; init; }

    /// <summary>
    /// The data directory's incarnation (<see cref="CentralConnection.Incarnation"/>): the central store refuses a
    /// second incarnation under one replica id. Null skips that check (tests of the store alone).
    /// </summary>
    public string? Incarnation { get; init; }

    /// <summary>Central retention: events older than this are deleted from the central store; null keeps them.</summary>
    public TimeSpan? RetainFor { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Most events shipped in one transaction.</summary>
    public int ShipBatch { get; init; } = 2000;

    /// <summary>Pause between shipping rounds when the outbox is empty.</summary>
    public TimeSpan ShipInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How often the sequencer's holder runs central retention.</summary>
    public TimeSpan RetentionInterval { get; init; } = TimeSpan.FromMinutes(5);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}
