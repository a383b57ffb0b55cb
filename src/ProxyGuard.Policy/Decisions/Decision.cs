namespace ProxyGuard.Policy.Decisions;

/// <summary>
/// One decision: what happens (<see cref="Verdict"/>), which rule decided (a rule name, <c>default</c>, or the
/// stage's own name such as <c>protocol</c>, <c>secrets</c> or a detector id), why (<see cref="Reason"/>, from the
/// closed <see cref="Reasons"/> set) and at which stage, under which policy mode. Audit mode is applied when the
/// decision is made (<see cref="Refuse"/>), never by callers.
/// </summary>
public sealed record Decision(Verdict Verdict, string Rule, Reason Reason, DecisionStage Stage, PolicyMode Mode)
{
    /// <summary>The tunnel mode of an allowed CONNECT (intercept for everything else).</summary>
    public TunnelMode TunnelMode { get; init; } = TunnelMode.Intercept;

    /// <summary>True when an allow rule with <c>websocket: true</c> decided.</summary>
    public bool WebSocketAllowed { get; init; }

    public string VerdictName => DecisionNames.Of(Verdict);

    /// <summary>The status a refused client gets.</summary>
    public int Status => Reason.Status;

    /// <summary>An allow decision.</summary>
    public static Decision Allow(string rule, Reason reason, DecisionStage stage, PolicyMode mode) =>
        new(Verdict.Allow, rule, reason, stage, mode);

    /// <summary>
    /// A refusal. In audit mode, a reason that is <see cref="Reason.Auditable"/> becomes <see cref="Verdict.AuditDeny"/>
    /// (forwarded and recorded); every other reason is enforced in both modes.
    /// </summary>
    public static Decision Refuse(string rule, Reason reason, PolicyMode mode) =>
        new(mode == PolicyMode.Audit && reason.Auditable ? Verdict.AuditDeny : Verdict.Deny, rule, reason, reason.Stage, mode);

    /// <summary>A refusal that no mode can turn into a forward (protocol safety, limits, the audit store).</summary>
    public static Decision Enforce(string rule, Reason reason) => new(Verdict.Deny, rule, reason, reason.Stage, PolicyMode.Enforce);

    public override string ToString() => $"{VerdictName} rule={Rule} reason={Reason.Name} stage={DecisionNames.Of(Stage)}";
}
