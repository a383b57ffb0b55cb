using System.Globalization;
using System.Text;
using System.Text.Json;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.Policy.Lifecycle;

/// <summary>How a candidate policy decides a recorded request compared with the decision recorded then.</summary>
public enum ReplayChange
{
    NewlyDenied,
    NewlyAllowed,
}

/// <summary>One recorded request in a replay group.</summary>
public sealed record ReplayExample(long Id, DateTimeOffset Time, string Method, string Url);

/// <summary>Recorded requests that one client sent, that the same recorded rule decided and the same candidate rule now decides differently.</summary>
public sealed record ReplayGroup(ReplayChange Change, string? Client, string? RecordedRule, string CandidateRule, string CandidateReason, int Count, IReadOnlyList<ReplayExample> Examples);

/// <summary>The result of a replay: counts and the groups of changed decisions (newly denied first).</summary>
public sealed record ReplayReport(string Candidate, string? Baseline, long Replayed, long Unchanged, long NotComparable, IReadOnlyList<ReplayGroup> Groups)
{
    public long NewlyDenied => Groups.Where(g => g.Change == ReplayChange.NewlyDenied).Sum(g => (long)g.Count);

    public long NewlyAllowed => Groups.Where(g => g.Change == ReplayChange.NewlyAllowed).Sum(g => (long)g.Count);
}

/// <summary>
/// Replays recorded decisions against a candidate policy through the proxy's own rules decision
/// (<see cref="PolicyEvaluator"/> → <see cref="PolicyDecider"/>: the CONNECT first for https, then the request).
/// The recorded side is what the rules decided then: <c>allow</c> is allowed; <c>deny</c> and <c>audit-deny</c> by a
/// rules or client reason are denied; a request refused by a later stage (content, secrets, network, upstream) had
/// passed the rules, so it counts as allowed by them. Requests refused before the rules (protocol, tunnel identity,
/// limits, the audit store) are not comparable and only counted. The candidate's audit mode is ignored: a would-be
/// denial counts as denied, so the replay says what enforcing the candidate would do.
/// </summary>
/// <remarks>
/// With a <c>baseline</c> policy the recorded side is not the recorded decision but the baseline's decision on the same
/// recorded request (both through the same decision function): "what changes if this file replaces that one",
/// which also works on traffic recorded in audit mode before any rule existed.
/// </remarks>
public sealed class PolicyReplay(CompiledPolicy candidate, int maxExamples = 5, CompiledPolicy? baseline = null)
{
    private readonly Dictionary<(ReplayChange, string?, string?, string, string), (int Count, List<ReplayExample> Examples)> _groups = [];
    /// <summary>Distinct requests whose decisions are remembered (bounded: the cache is emptied when full).</summary>
    private const int MaxCached = 100_000;

    private readonly Dictionary<CacheKey, Decided> _decided = [];
    private long _replayed;
    private long _unchanged;
    private long _notComparable;

    /// <summary>Decides one recorded request with the candidate and records whether the decision changed.</summary>
    public void Add(ObservedRequest e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (!WasAllowedByRules(e, out var before) || string.IsNullOrEmpty(e.Host) || e.Port is < 1 or > 65535
            || (e.IsRequest && (string.IsNullOrEmpty(e.Method) || CompiledPolicy.DefaultPort(e.Scheme) == 0)))
        {
            _notComparable++;
            return;
        }

        _replayed++;
        var connectOnly = !e.IsRequest;
        var url = new TargetUrl(connectOnly ? "https" : e.Scheme!.ToLowerInvariant(), e.Host, e.Port, connectOnly ? "/" : e.PathOnly);
        var method = connectOnly ? "CONNECT" : e.Method!;

        // Recorded traffic repeats itself (the same agents fetch the same URLs): each distinct request is decided once.
        var cacheKey = new CacheKey(e.Client, connectOnly, url.Scheme, url.Host, url.Port, method, url.RawPath);
        if (!_decided.TryGetValue(cacheKey, out var decided))
        {
            var evaluation = PolicyEvaluator.Evaluate(candidate, e.Client, method, url, connectOnly);
            var old = baseline is null ? null : PolicyEvaluator.Evaluate(baseline, e.Client, method, url, connectOnly);
            decided = new Decided(evaluation.Allowed, evaluation.Rule, evaluation.Reason, old?.Allowed, old?.Rule);
            if (_decided.Count >= MaxCached)
            {
                _decided.Clear();
            }

            _decided[cacheKey] = decided;
        }

        var after = decided.Allowed;
        var recordedRule = e.Rule;
        if (decided.BaselineAllowed is { } baselineAllowed)
        {
            before = baselineAllowed;
            recordedRule = decided.BaselineRule;
        }
        if (after == before)
        {
            _unchanged++;
            return;
        }

        var change = after ? ReplayChange.NewlyAllowed : ReplayChange.NewlyDenied;
        var key = (change, e.Client, recordedRule, decided.Rule, decided.Reason);
        if (!_groups.TryGetValue(key, out var group))
        {
            group = (0, []);
        }

        if (group.Examples.Count < maxExamples)
        {
            group.Examples.Add(new ReplayExample(e.Id, e.Time, connectOnly ? "CONNECT" : e.Method!.ToUpperInvariant(), connectOnly ? $"{e.Host}:{e.Port.ToString(CultureInfo.InvariantCulture)}" : e.Url));
        }

        _groups[key] = (group.Count + 1, group.Examples);
    }

    public ReplayReport Report() => new(
        candidate.FilePath, baseline?.FilePath, _replayed, _unchanged, _notComparable,
        _groups.OrderBy(g => g.Key.Item1).ThenByDescending(g => g.Value.Count).ThenBy(g => g.Key.Item2, StringComparer.Ordinal).ThenBy(g => g.Key.Item4, StringComparer.Ordinal)
            .Select(g => new ReplayGroup(g.Key.Item1, g.Key.Item2, g.Key.Item3, g.Key.Item4, g.Key.Item5, g.Value.Count, g.Value.Examples)).ToList());

    private readonly record struct CacheKey(string? Client, bool Connect, string Scheme, string Host, int Port, string Method, string Path);

    private sealed record Decided(bool Allowed, string Rule, string Reason, bool? BaselineAllowed, string? BaselineRule);

    /// <summary>What the rules decided when the request was recorded; false when that cannot be known (not comparable).</summary>
    private static bool WasAllowedByRules(ObservedRequest e, out bool allowed)
    {
        allowed = false;
        if (e.Decision == "allow")
        {
            allowed = true;
            return true;
        }

        if (e.Decision is not ("deny" or "audit-deny"))
        {
            return false;
        }

        var reason = Reasons.Find(e.Reason);
        switch (reason?.Stage)
        {
            case DecisionStage.Rules or DecisionStage.Client:
                // auth-throttled is about the address, not the policy.
                return reason != Reasons.AuthThrottled;
            case DecisionStage.Content or DecisionStage.Secrets or DecisionStage.Network or DecisionStage.Upstream:
                allowed = true;
                return true;
            default:
                return false;
        }
    }

    public static string Format(ReplayReport report, string format) => format switch
    {
        "json" => Json(report),
        "markdown" => Markdown(report),
        _ => Text(report),
    };

    private static string Against(ReplayReport r) => r.Baseline is null ? "the recorded decisions" : r.Baseline;

    private static string Describe(ReplayChange change) => change == ReplayChange.NewlyDenied ? "newly denied" : "newly allowed";

    private static string Text(ReplayReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"replayed {r.Replayed} recorded requests against {r.Candidate} (compared with {Against(r)}): {r.NewlyDenied} newly denied, {r.NewlyAllowed} newly allowed, {r.Unchanged} unchanged ({r.NotComparable} not comparable)");
        foreach (var g in r.Groups)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{Describe(g.Change)}: {g.Count} from client {Clean(g.Client ?? "-")}, {(r.Baseline is null ? "recorded" : "baseline")} rule {Clean(g.RecordedRule ?? "-")} -> candidate rule {g.CandidateRule} ({g.CandidateReason})");
            foreach (var x in g.Examples)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"    #{x.Id} {PolicySuggester.Stamp(x.Time)} {x.Method} {Clean(x.Url)}");
            }
        }

        return sb.ToString();
    }

    private static string Markdown(ReplayReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"### Policy replay: {(r.NewlyDenied > 0 ? "⚠️ " + r.NewlyDenied.ToString(CultureInfo.InvariantCulture) + " newly denied" : "no newly denied requests")}");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{r.Replayed} recorded requests replayed against `{Cell(Path.GetFileName(r.Candidate))}` (compared with {Cell(Against(r))}): **{r.NewlyDenied}** newly denied, **{r.NewlyAllowed}** newly allowed, {r.Unchanged} unchanged ({r.NotComparable} not comparable).");
        if (r.Groups.Count == 0)
        {
            return sb.ToString();
        }

        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"| change | client | {(r.Baseline is null ? "recorded" : "baseline")} rule | candidate rule | reason | count | examples |");
        sb.AppendLine("| --- | --- | --- | --- | --- | ---: | --- |");
        foreach (var g in r.Groups)
        {
            var examples = string.Join("<br>", g.Examples.Select(x => $"`{Cell(x.Method + " " + x.Url)}`"));
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {Describe(g.Change)} | {Cell(g.Client ?? "-")} | {Cell(g.RecordedRule ?? "-")} | {Cell(g.CandidateRule)} | {Cell(g.CandidateReason)} | {g.Count} | {examples} |");
        }

        return sb.ToString();
    }

    private static string Json(ReplayReport r)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("candidate", r.Candidate);
            w.WriteString("baseline", r.Baseline);
            w.WriteNumber("replayed", r.Replayed);
            w.WriteNumber("newlyDenied", r.NewlyDenied);
            w.WriteNumber("newlyAllowed", r.NewlyAllowed);
            w.WriteNumber("unchanged", r.Unchanged);
            w.WriteNumber("notComparable", r.NotComparable);
            w.WriteStartArray("groups");
            foreach (var g in r.Groups)
            {
                w.WriteStartObject();
                w.WriteString("change", g.Change == ReplayChange.NewlyDenied ? "newly-denied" : "newly-allowed");
                w.WriteString("client", g.Client);
                w.WriteString("recordedRule", g.RecordedRule);
                w.WriteString("candidateRule", g.CandidateRule);
                w.WriteString("candidateReason", g.CandidateReason);
                w.WriteNumber("count", g.Count);
                w.WriteStartArray("examples");
                foreach (var x in g.Examples)
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", x.Id);
                    w.WriteString("time", x.Time);
                    w.WriteString("method", x.Method);
                    w.WriteString("url", x.Url);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    /// <summary>Recorded text is already cleaned by the store; control characters are still shown escaped, never printed.</summary>
    private static string Clean(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (char.IsControl(c) || c is '\u2028' or '\u2029' || (c >= '\u202a' && c <= '\u202e') || (c >= '\u2066' && c <= '\u2069'))
            {
                sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    private static string Cell(string text) => Clean(text).Replace("|", "\\|", StringComparison.Ordinal).Replace("`", "'", StringComparison.Ordinal);
}
