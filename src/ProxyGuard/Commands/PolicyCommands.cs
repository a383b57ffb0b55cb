using System.CommandLine;
using System.Text;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Secrets;

namespace ProxyGuard.Commands;

internal static class PolicyCommands
{
    private static readonly UTF8Encoding s_strictUtf8 = new(false, true);

    public static Command Create()
    {
        var command = new Command("policy", "Check, explain and test policy files; suggest, replay and diff them against recorded traffic.") { Check(), Explain(), Test() };
        foreach (var lifecycle in PolicyLifecycleCommands.Create())
        {
            command.Subcommands.Add(lifecycle);
        }

        return command;
    }

    /// <summary>
    /// The options the running proxy loads with (unknown detector ids are errors with their position); <c>check</c> and
    /// <c>run</c> pass them to <see cref="PolicyLoader.Validate"/>.
    /// </summary>
    internal static PolicyLoadOptions LoadOptions(Func<string, string?>? secretReferenceValidator) => new()
    {
        SecretReferenceValidator = secretReferenceValidator,
        KnownDetectorIds = PolicyRuntime.KnownDetectorIds,
    };

    private static Command Check()
    {
        var files = new Argument<string[]>("FILE") { Arity = ArgumentArity.OneOrMore, Description = "Policy files." };
        files.Validators.Add(result =>
        {
            // A mistyped option would otherwise be taken for a file name (and reported as "file not found").
            foreach (var token in result.Tokens)
            {
                if (token.Value.StartsWith('-') && !File.Exists(token.Value))
                {
                    result.AddError($"unknown option '{token.Value}' (use ./{token.Value} for a file whose name starts with '-')");
                }
            }
        });
        var resolveSecrets = new Option<bool>("--resolve-secrets")
        {
            Description = "Also check that every secret reference (env:, file:, vault:) resolves here, as on the proxy host. Values are never printed.",
        };
        var command = new Command("check", "Validate policy files; each problem as FILE:LINE:COL: message.") { files, resolveSecrets };
        command.SetAction(parse =>
        {
            // By default only the syntax of secret references is checked: policies are written and
            // reviewed on workstations and in CI, where the proxy host's secrets are not available.
            // With --resolve-secrets they are resolved by a resolver set up as 'run' sets up its own.
            SecretResolverOptions? resolverOptions = null;
            try
            {
                resolverOptions = parse.GetValue(resolveSecrets) ? SecretResolverOptions.FromEnvironment() : null;
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine("proxyguard: " + ex.Message);
                return ExitCodes.Usage;
            }

            using var resolver = resolverOptions is null ? null : new SecretResolver(resolverOptions);
            var options = LoadOptions(resolver is null ? null : resolver.Validate);
            var failed = false;
            foreach (var file in parse.GetValue(files)!)
            {
                // The same validation 'run' performs before it starts (the policy, then every file it names).
                var result = PolicyLoader.Validate(file, options);
                foreach (var diagnostic in result.Diagnostics.Concat(result.Warnings).OrderBy(d => d.Line).ThenBy(d => d.Column))
                {
                    Console.Error.WriteLine(diagnostic.ToString());
                }

                if (result.Success)
                {
                    var p = result.Policy!;
                    Console.WriteLine($"{file}: ok ({p.Rules.Count} rules, {p.Clients.Count} clients, {p.Secrets.Count} secrets, {(p.Budgets.Count > 0 ? $"{p.Budgets.Count} budgets, " : string.Empty)}mode {p.Mode.ToString().ToLowerInvariant()}, default {p.Default.ToString().ToLowerInvariant()})");
                }
                else
                {
                    failed = true;
                }
            }

            return failed ? ExitCodes.Failed : ExitCodes.Ok;
        });
        return command;
    }

    private static Command Test()
    {
        var file = new Argument<string>("FILE") { Description = "Policy file." };
        var cases = new Argument<string>("CASES") { Description = "Cases file (see docs/policy.md)." };
        var command = new Command("test", "Run expectation cases against a policy; prints N passed, N failed.") { file, cases };
        command.SetAction(async (parse, ct) =>
        {
            var loaded = PolicyLoader.LoadFile(parse.GetValue(file)!, LoadOptions(null));
            if (!loaded.Success)
            {
                foreach (var diagnostic in loaded.Diagnostics)
                {
                    Console.Error.WriteLine(diagnostic.ToString());
                }

                return ExitCodes.Failed;
            }

            var (parsed, problems) = PolicyCaseRunner.LoadFile(parse.GetValue(cases)!);
            foreach (var diagnostic in problems)
            {
                Console.Error.WriteLine(diagnostic.ToString());
            }

            if (problems.Count > 0)
            {
                Console.WriteLine(new PolicyCaseReport([], problems).Summary);
                return ExitCodes.Failed;
            }

            // Secrets are never read: each gets a stand-in value, and placeholders come from a key made for this run,
            // so a cases file gives the same result on every machine and nothing is written.
            using var secrets = new OfflineSecretProvider(check: false);
            ProxySnapshot snapshot;
            try
            {
                snapshot = await SnapshotBuilder.BuildAsync(loaded.Policy!, secrets, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), ct);
            }
            catch (PolicyFileException ex)
            {
                Console.Error.WriteLine((ex.Diagnostic with { File = parse.GetValue(file)! }).ToString());
                return ExitCodes.Failed;
            }

            var results = await PolicyCaseRunner.RunAsync(parsed, (c, token) => RunCaseAsync(snapshot, c, token), ct);
            var report = new PolicyCaseReport(results, []);
            foreach (var result in report.Results)
            {
                Console.WriteLine(result.ToString());
            }

            Console.WriteLine(report.Summary);
            return report.Success ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }

    /// <summary>One case through the same stages as <c>policy explain</c> (a CONNECT-only case through the rules alone).</summary>
    internal static async Task<PolicyCaseOutcome> RunCaseAsync(ProxySnapshot snapshot, PolicyCase c, CancellationToken ct)
    {
        if (c.ConnectOnly)
        {
            return PolicyCaseOutcome.From(PolicyEvaluator.Evaluate(snapshot.Policy, c.Client, c.Method, c.Url, connectOnly: true));
        }

        var markers = Markers(snapshot);
        string? error = null;
        string Expand(string text) => error is null ? PolicyCaseRunner.ExpandMarkers(text, markers, out error) ?? text : text;
        var url = c.Url with { RawPath = Expand(c.Url.RawPath) };
        var headers = c.Headers.Select(h => new KeyValuePair<string, string>(h.Key, Expand(h.Value))).ToList();
        var body = ExpandBody(c.Body, Expand);
        if (error is not null)
        {
            return new PolicyCaseOutcome(false, "-", error, "case", null, false, [], []);
        }

        var outcome = await OfflineDecider.DecideAsync(snapshot, c.Client, c.Method, url, headers, body, ct);
        var decision = outcome.Decision;
        var stage = decision.Stage is DecisionStage.Rules or DecisionStage.Client ? outcome.Evaluation.Stage : DecisionNames.Of(decision.Stage);
        return new PolicyCaseOutcome(
            decision.Verdict == Verdict.Allow, decision.Rule, decision.Reason.Name, stage, outcome.Evaluation.TunnelMode, outcome.Evaluation.WebSocketAllowed,
            outcome.Findings.Select(f => f.Detector).Distinct(StringComparer.Ordinal).ToList(), outcome.Injected.ToList())
        {
            Verdict = decision.VerdictName,
            Budgets = outcome.Budgets.Select(b => b.Budget.Name).ToList(),
        };
    }

    /// <summary>
    /// What <c>{{placeholder:NAME}}</c> and <c>{{value:NAME}}</c> stand for (explain and cases alike): each secret's
    /// placeholder and the synthetic value that stands in for its real one offline.
    /// </summary>
    internal static Dictionary<string, (string Placeholder, string Value)> Markers(ProxySnapshot snapshot)
    {
        var placeholders = snapshot.Bindings.Select(b => (b.Name, b.Placeholder)).Concat(snapshot.Unavailable.Select(u => (u.Name, u.Placeholder)))
            .ToDictionary(p => p.Name, p => p.Placeholder, StringComparer.Ordinal);
        return snapshot.Policy.Secrets.ToDictionary(
            s => s.Name, s => (placeholders[s.Name], OfflineSecretProvider.StandIn(s.ValueReference)), StringComparer.Ordinal);
    }

    /// <summary>Markers are expanded in a UTF-8 body; any other body is used byte for byte.</summary>
    internal static byte[]? ExpandBody(byte[]? body, Func<string, string> expand)
    {
        if (body is null || body.AsSpan().IndexOf("{{"u8) < 0)
        {
            return body;
        }

        try
        {
            return Encoding.UTF8.GetBytes(expand(s_strictUtf8.GetString(body)));
        }
        catch (DecoderFallbackException)
        {
            return body;
        }
    }

    private static Command Explain()
    {
        var file = new Argument<string>("FILE") { Description = "Policy file." };
        var method = new Argument<string>("METHOD") { Description = "HTTP method." };
        var url = new Argument<string>("URL") { Description = "Request URL, e.g. https://api.github.com/repos/acme/x" };
        var client = new Option<string?>("--client") { Description = "Client id." };
        var headers = new Option<string[]>("-H", "--header") { Description = "Request header 'K: V' (repeatable)." };
        var bodyFile = new Option<string?>("--body-file") { Description = "Request body file." };
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory (placeholder key).", DefaultValueFactory = _ => ".proxyguard" }.NotEmpty();
        var command = new Command("explain", "Show the decision for one request, offline.") { file, method, url, client, headers, bodyFile, dataDir };
        command.SetAction(async (parse, ct) =>
        {
            var loaded = PolicyLoader.LoadFile(parse.GetValue(file)!, LoadOptions(null));
            if (!loaded.Success)
            {
                foreach (var diagnostic in loaded.Diagnostics)
                {
                    Console.Error.WriteLine(diagnostic.ToString());
                }

                return ExitCodes.Failed;
            }

            if (!TargetUrl.TryParse(parse.GetValue(url)!, out var target, out var urlError))
            {
                Console.Error.WriteLine("proxyguard: " + urlError);
                return ExitCodes.Usage;
            }

            var headerList = new List<KeyValuePair<string, string>>();
            foreach (var h in parse.GetValue(headers) ?? [])
            {
                var colon = h.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    Console.Error.WriteLine($"proxyguard: header '{h}' is not 'Name: value'");
                    return ExitCodes.Usage;
                }

                headerList.Add(new(h[..colon].Trim(), h[(colon + 1)..].Trim()));
            }

            byte[]? body = null;
            if (parse.GetValue(bodyFile) is { } path)
            {
                try
                {
                    body = await File.ReadAllBytesAsync(path, ct);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"proxyguard: cannot read --body-file {path}: {ex.Message}");
                    return ExitCodes.Failed;
                }
            }

            using var secrets = new OfflineSecretProvider();
            ProxySnapshot snapshot;
            try
            {
                snapshot = await SnapshotBuilder.BuildAsync(loaded.Policy!, secrets, InstallationKeyFile.ReadOrEphemeral(parse.GetValue(dataDir)!, loaded.Policy!.Secrets.Any(s => s.Placeholder is null)), ct);
            }
            catch (PolicyFileException ex)
            {
                // 'run' would refuse to start with this policy: say where, as 'policy check' does.
                Console.Error.WriteLine((ex.Diagnostic with { File = parse.GetValue(file)! }).ToString());
                return ExitCodes.Failed;
            }

            // {{placeholder:NAME}} and {{value:NAME}} in the URL's path, the headers and a UTF-8 body, as in cases files.
            var markers = Markers(snapshot);
            string? markerError = null;
            string Expand(string text) => markerError is null ? PolicyCaseRunner.ExpandMarkers(text, markers, out markerError) ?? text : text;
            target = target! with { RawPath = Expand(target!.RawPath) };
            headerList = headerList.Select(h => new KeyValuePair<string, string>(h.Key, Expand(h.Value))).ToList();
            body = ExpandBody(body, Expand);
            if (markerError is not null)
            {
                Console.Error.WriteLine("proxyguard: " + markerError);
                return ExitCodes.Usage;
            }

            var (allowed, text) = await DescribeAsync(snapshot, parse.GetValue(client), parse.GetValue(method)!.ToUpperInvariant(), target, headerList, body, ct);
            Console.Write(text);
            foreach (var line in Warnings(loaded.Policy!, secrets, HostNormalizer.NormalizeOrNull(target.Host) ?? target.Host))
            {
                Console.WriteLine(line);
            }

            return allowed ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }

    /// <summary>For each secret bound to the request's host that does not resolve here, where it looked and what that means.</summary>
    internal static IEnumerable<string> Warnings(CompiledPolicy policy, OfflineSecretProvider secrets, string host)
    {
        foreach (var secret in policy.Secrets.Where(s => secrets.Unresolved.ContainsKey(s.ValueReference) && s.Hosts.Matches(host)))
        {
            yield return $"warning:   secret '{secret.Name}' does not resolve here ({secret.ValueReference}: {secrets.Unresolved[secret.ValueReference]}); "
                + "the decision above does not depend on it (explain decides on placeholders), but where it does not resolve on the proxy host, "
                + "requests that carry its placeholder are denied (secret-unavailable).";
        }
    }

    /// <summary>
    /// The explanation of one request: the same deciding stages the proxy runs (rules, content, secret gate,
    /// substitution), so the decision, rule and reason are the ones the proxy would send and record.
    /// </summary>
    internal static async Task<(bool Allowed, string Text)> DescribeAsync(
        ProxySnapshot snapshot, string? client, string method, TargetUrl target, List<KeyValuePair<string, string>> headers, byte[]? body,
        CancellationToken ct)
    {
        var outcome = await OfflineDecider.DecideAsync(snapshot, client, method, target, headers, body, ct);
        var evaluation = outcome.Evaluation;
        var decision = outcome.Decision;
        var sb = new StringBuilder();
        sb.AppendLine($"request:   {method} {target.Scheme}://{evaluation.NormalizedHost}:{evaluation.Port}{evaluation.Path.Path}{(evaluation.Path.Ambiguous ? " (ambiguous path: matches no path rule)" : string.Empty)}");
        sb.AppendLine($"decision:  {decision.VerdictName} at the {DecisionNames.Of(decision.Stage)} stage");
        sb.AppendLine($"rule:      {decision.Rule}");
        sb.AppendLine($"reason:    {decision.Reason.Name}");
        if (evaluation.TunnelMode is { } mode)
        {
            sb.AppendLine($"tunnel:    {mode.ToString().ToLowerInvariant()}");
        }

        if (outcome.Message is { } message)
        {
            sb.AppendLine($"message:   {message}");
        }

        if (decision.Verdict != Verdict.Allow && decision.Rule == CompiledPolicy.DefaultRuleName && decision.Stage == DecisionStage.Rules)
        {
            var connect = evaluation.Stage == "connect";
            var misses = snapshot.Policy.NearMisses(
                snapshot.Policy.RequiresAuthentication ? client : null, target.Scheme, target.Host, target.Port, connect ? null : method, target.RawPath);
            if (misses.Count == 0)
            {
                sb.AppendLine($"nearest:   no allow rule names the host {evaluation.NormalizedHost}");
            }

            foreach (var miss in misses)
            {
                sb.AppendLine($"nearest:   {miss}");
            }
        }

        var findings = outcome.Findings.Select(f => $"{f.Detector} in {f.Location} ({f.Action})").ToList();
        sb.AppendLine($"findings:  {(findings.Count == 0 ? "none" : string.Join("; ", findings))}");
        sb.AppendLine($"secrets:   {(outcome.Injected.Count == 0 ? "none injected" : string.Join(", ", outcome.Injected))}");
        if (snapshot.Policy.Budgets.Count > 0)
        {
            if (outcome.Budgets.Count == 0)
            {
                sb.AppendLine("budgets:   none applies");
            }

            foreach (var (budget, key) in outcome.Budgets)
            {
                sb.AppendLine($"budgets:   '{budget.Name}' (line {budget.Line}): {string.Join(" and ", budget.Limits.Select(BudgetStage.Describe))}, counted for {key}; past it: deny (budget-exceeded)");
            }
        }
        return (decision.Verdict == Verdict.Allow, sb.ToString());
    }
}
