using Microsoft.AspNetCore.Http;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Engine.Pipeline;

/// <summary>
/// One request on its way through the stages: the snapshot it is decided under, the view of what the sandbox sent,
/// what will go upstream, and what the stages found. Offline runs (<c>policy explain</c>) have no
/// <see cref="Http"/> context and no connection.
/// </summary>
internal sealed class ProxyExchange
{
    private readonly List<IDisposable> _held = [];
    private RequestView? _view;
    private OutgoingRequest? _outgoing;

    public ProxyExchange(ProxySnapshot snapshot, HttpContext? http, ProxyConnectionFeature? connection, long started)
    {
        Snapshot = snapshot;
        Http = http;
        Connection = connection;
        Started = started;
    }

    public ProxySnapshot Snapshot { get; }

    public HttpContext? Http { get; }

    public ProxyConnectionFeature? Connection { get; }

    public long Started { get; }

    public CancellationToken Aborted => Http?.RequestAborted ?? CancellationToken.None;

    /// <summary>Set by the target stage; every later stage may rely on it.</summary>
    public RequestView View
    {
        get => _view ?? throw new InvalidOperationException("the target stage has not run");
        set
        {
            _view = value;
            _outgoing = new OutgoingRequest(value);
        }
    }

    public bool HasView => _view is not null;

    public OutgoingRequest Outgoing => _outgoing ?? throw new InvalidOperationException("the target stage has not run");

    /// <summary>The rules stage's decision (the rule that allowed the request, or would have refused it in audit mode).</summary>
    public Decision? Decision { get; set; }

    /// <summary>In audit mode: the first refusal that enforce mode would have made (the request goes on).</summary>
    public Decision? AuditDeny { get; set; }

    /// <summary>A note on an allowed request (e.g. <c>over-limit-unscanned</c>, an upstream failure after the response started).</summary>
    public Reason? Note { get; set; }

    public List<AuditFinding> Findings { get; } = [];

    /// <summary>True when the destination host itself carries a credential: events then record only its last labels.</summary>
    public bool HostCarriesCredential { get; set; }

    /// <summary>
    /// False once the secret gate found no placeholder anywhere in the head (in any encoding): substitution then has
    /// nothing to do there. True until the gate has looked.
    /// </summary>
    public bool HeadCarriesPlaceholder { get; set; } = true;

    /// <summary>Names of the secrets substituted (each once).</summary>
    public List<string> Injected { get; } = [];

    /// <summary>True once the request's event was handed to the audit store (set by the audit stage, the one recorder).</summary>
    public bool Recorded { get; set; }

    /// <summary>The audit queue slot reserved for this request's event (null offline, or when the store refused).</summary>
    public EventReservation? Reservation { get; set; }

    public long RequestBytes { get; set; }

    /// <summary>The upload budgets that count a streamed body or a WebSocket's frames while they flow (null: none apply).</summary>
    public Budgets.StreamedUpload? Upload { get; set; }

    public long ResponseBytes { get; set; }

    /// <summary>
    /// Keeps <paramref name="lease"/> (a share of a process-wide budget) until the request ends: the request delegate
    /// releases everything held in its <c>finally</c>, so it is given back on every path (completion, refusal, client
    /// abort, exception). Returns the lease.
    /// </summary>
    public T Hold<T>(T lease)
        where T : IDisposable
    {
        lock (_held)
        {
            _held.Add(lease);
        }

        return lease;
    }

    /// <summary>Releases everything <see cref="Hold"/> kept (once; later calls find nothing).</summary>
    public void ReleaseHeld()
    {
        IDisposable[] held;
        lock (_held)
        {
            held = [.. _held];
            _held.Clear();
        }

        foreach (var lease in held)
        {
            lease.Dispose();
        }
    }

    /// <summary>
    /// Applies a stage's refusal: in audit mode an auditable one is remembered and the request goes on (returns
    /// null); otherwise it ends the request (returns the denial).
    /// </summary>
    public Denial? Refuse(Denial denial)
    {
        if (denial.Decision.Verdict == Verdict.AuditDeny)
        {
            AuditDeny ??= denial.Decision;
            return null;
        }

        return denial;
    }

    public void AddInjected(IEnumerable<string> names)
    {
        foreach (var name in names)
        {
            if (!Injected.Contains(name))
            {
                Injected.Add(name);
            }
        }
    }
}
