namespace ProxyGuard.Engine.Runtime;

/// <summary>Whether the proxy listener is bound and serving (set by the host; read by the readiness probe).</summary>
internal sealed class ServingState
{
    private int _state; // 0 starting, 1 listening, 2 stopping

    public bool Listening => Volatile.Read(ref _state) == 1;

    public bool Stopping => Volatile.Read(ref _state) == 2;

    /// <summary>The proxy listener is bound (once; a stopping proxy never becomes ready again).</summary>
    public void MarkListening() => Interlocked.CompareExchange(ref _state, 1, 0);

    public void MarkStopping() => Volatile.Write(ref _state, 2);
}
