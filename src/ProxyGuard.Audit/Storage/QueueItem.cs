namespace ProxyGuard.Audit.Storage;

internal enum QueueItemKind
{
    Event,
    Flush,
    Compact,
    Checkpoint,

    /// <summary>The shipper confirmed more events or checkpoints: write the local "what was shipped" markers now.</summary>
    Shipped,
}

/// <summary>An entry of the writer's queue: an event (optionally awaited until committed) or a control marker.</summary>
internal readonly record struct QueueItem(QueueItemKind Kind, PreparedEvent? Event, TaskCompletionSource<bool>? Completion)
{
    public static TaskCompletionSource<bool> NewCompletion() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
