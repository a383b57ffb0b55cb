using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using ProxyGuard.Audit;
using ProxyGuard.Policy;
using ProxyGuard.Policy.Lifecycle;

namespace ProxyGuard.Commands;

/// <summary><c>policy suggest</c>, <c>policy replay</c> and <c>policy diff</c>: from recorded traffic to a reviewed policy.</summary>
internal static class PolicyLifecycleCommands
{
    internal static readonly string[] Formats = ["text", "json", "markdown"];

    private const int PageSize = 1000;

    public static IEnumerable<Command> Create() => [Suggest(), Replay(), Diff()];

    private static Option<string> EventsOption() => new Option<string>("--events")
    {
        Description = "Recorded events: the proxy's data directory (holding events.db) or its admin API (ADDR:PORT, http://ADDR:PORT, unix:/path.sock).",
        Required = true,
    }.NotEmpty();

    private static Command Suggest()
    {
        var events = EventsOption();
        var client = new Option<string?>("--client") { Description = "Only this client's requests." };
        var since = SinceOption();
        var output = new Option<string?>("-o", "--output") { Description = "Write the draft to FILE (and its cases to FILE's name with .cases.yaml) instead of stdout." }.NotEmpty();
        var token = TokenOption();
        var dataDir = DataDirOption();
        var command = new Command("suggest", "Write a least-privilege policy draft (and cases) from recorded traffic.") { events, client, since, output, token, dataDir };
        command.SetAction(async (parse, ct) =>
        {
            var source = await EventSource.OpenAsync(parse.GetValue(events)!, parse.GetValue(token), parse.GetValue(dataDir)!, ct);
            if (source is null)
            {
                return ExitCodes.Failed;
            }

            var observed = new List<ObservedRequest>();
            await foreach (var e in source.ReadAsync(parse.GetValue(client), Since(parse.GetValue(since)), ct))
            {
                observed.Add(e);
            }

            var suggestion = PolicySuggester.Suggest(observed);
            var outFile = parse.GetValue(output);
            if (outFile is null)
            {
                Console.Write(suggestion.PolicyYaml);
            }
            else
            {
                var casesFile = CasesPath(outFile);
                await File.WriteAllTextAsync(outFile, suggestion.PolicyYaml, ct);
                await File.WriteAllTextAsync(casesFile, suggestion.CasesYaml, ct);
                Console.WriteLine($"wrote {outFile} and {casesFile} from {suggestion.Used} recorded requests ({source.Display})");
            }

            foreach (var line in suggestion.Skipped)
            {
                await Console.Error.WriteLineAsync($"proxyguard: left out {line}");
            }

            if (suggestion.Uncovered > 0)
            {
                await Console.Error.WriteLineAsync($"proxyguard: warning: the draft does not allow {suggestion.Uncovered} of the recorded requests it was built from");
            }

            if (suggestion.Used == 0)
            {
                await Console.Error.WriteLineAsync("proxyguard: no allowed or audit-denied requests were recorded (run the agents through a proxy in audit mode first)");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Replay()
    {
        var candidate = new Argument<string>("CANDIDATE") { Description = "The candidate policy file." };
        var events = EventsOption();
        var client = new Option<string?>("--client") { Description = "Only this client's requests." };
        var since = SinceOption();
        var format = new Option<string>("--format") { Description = "text | json | markdown", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong(Formats);
        var examples = new Option<int>("--examples") { Description = "Examples per group (default 5).", DefaultValueFactory = _ => 5 }.Count("examples per group", 1000);
        var baseline = new Option<string?>("--baseline") { Description = "Compare with this policy's decisions on the same requests instead of the recorded decisions (e.g. the policy in force)." }.NotEmpty();
        var token = TokenOption();
        var dataDir = DataDirOption();
        var command = new Command("replay", "Show which recorded requests a candidate policy decides differently; exit 1 when any would be newly denied.")
        {
            candidate, events, baseline, client, since, format, examples, token, dataDir,
        };
        command.SetAction(async (parse, ct) =>
        {
            var policy = LoadOrReport(parse.GetValue(candidate)!);
            if (policy is null)
            {
                return ExitCodes.Failed;
            }

            var source = await EventSource.OpenAsync(parse.GetValue(events)!, parse.GetValue(token), parse.GetValue(dataDir)!, ct);
            if (source is null)
            {
                return ExitCodes.Failed;
            }

            CompiledPolicy? baselinePolicy = null;
            if (parse.GetValue(baseline) is { } baselineFile && (baselinePolicy = LoadOrReport(baselineFile)) is null)
            {
                return ExitCodes.Failed;
            }

            var replay = new PolicyReplay(policy, parse.GetValue(examples), baselinePolicy);
            await foreach (var e in source.ReadAsync(parse.GetValue(client), Since(parse.GetValue(since)), ct))
            {
                replay.Add(e);
            }

            var report = replay.Report();
            Console.Write(PolicyReplay.Format(report, parse.GetValue(format)!));
            return report.NewlyDenied > 0 ? ExitCodes.Failed : ExitCodes.Ok;
        });
        return command;
    }

    private static Command Diff()
    {
        var oldFile = new Argument<string>("OLD") { Description = "The current policy file." };
        var newFile = new Argument<string>("NEW") { Description = "The changed policy file." };
        var format = new Option<string>("--format") { Description = "text | json | markdown", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong(Formats);
        var command = new Command("diff", "Compare two policies by meaning: rules added, removed, widened, narrowed; secrets rebound.") { oldFile, newFile, format };
        command.SetAction(parse =>
        {
            var oldPolicy = LoadOrReport(parse.GetValue(oldFile)!);
            var newPolicy = LoadOrReport(parse.GetValue(newFile)!);
            if (oldPolicy is null || newPolicy is null)
            {
                return ExitCodes.Failed;
            }

            Console.Write(PolicyDiff.Format(PolicyDiff.Compare(oldPolicy, newPolicy), parse.GetValue(format)!));
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static string CasesPath(string policyFile)
    {
        var name = Path.GetFileName(policyFile);
        var stem = name.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) ? name[..^5] : name.EndsWith(".yml", StringComparison.OrdinalIgnoreCase) ? name[..^4] : name;
        return Path.Combine(Path.GetDirectoryName(policyFile) ?? string.Empty, stem + ".cases.yaml");
    }

    private static CompiledPolicy? LoadOrReport(string file)
    {
        var loaded = PolicyLoader.LoadFile(file, PolicyCommands.LoadOptions(null));
        foreach (var diagnostic in loaded.Diagnostics)
        {
            Console.Error.WriteLine(diagnostic.ToString());
        }

        return loaded.Success ? loaded.Policy : null;
    }

    private static Option<string?> SinceOption()
    {
        var since = new Option<string?>("--since") { Description = "Only events at or after this time: a duration ago (90s, 15m, 2h, 7d) or a UTC time (2026-01-31T12:00:00Z)." };
        since.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && !EventsCommand.TryParseSince(result.Tokens[^1].Value, DateTimeOffset.UtcNow, out _))
            {
                result.AddError($"--since: expected a duration such as 15m, 2h or 7d, or a time such as 2026-01-31T12:00:00Z, got '{result.Tokens[^1].Value}'");
            }
        });
        return since;
    }

    private static DateTimeOffset? Since(string? text) =>
        text is not null && EventsCommand.TryParseSince(text, DateTimeOffset.UtcNow, out var since) ? since : null;

    private static Option<string?> TokenOption() =>
        new Option<string?>("--token") { Description = "Admin token, for an admin API (default: PROXYGUARD_ADMIN_TOKEN, then DATA_DIR/admin.token)." }.NotEmpty();

    private static Option<string> DataDirOption() =>
        new Option<string>("--data-dir") { Description = "Data directory holding admin.token (for an admin API).", DefaultValueFactory = _ => ".proxyguard" }.NotEmpty();

    internal static ObservedRequest ToObserved(AuditEvent e) => new()
    {
        Id = e.Id,
        Time = e.Time,
        Client = e.Client,
        Kind = e.Kind,
        Method = e.Method,
        Scheme = e.Scheme,
        Host = e.Host,
        Port = e.Port,
        Path = e.Path,
        Decision = e.Decision,
        Rule = e.Rule,
        Reason = e.Reason,
        Findings = e.Findings.Select(f => (f.Detector, f.Location)).ToList(),
    };

    /// <summary>Where recorded events come from: a data directory (read-only) or a running proxy's admin API.</summary>
    private sealed class EventSource
    {
        private readonly string? _directory;
        private readonly AdminEndpoint? _endpoint;
        private readonly string? _token;
        private readonly string _tokenSource = string.Empty;

        private EventSource(string? directory, AdminEndpoint? endpoint, string? token, string tokenSource)
        {
            _directory = directory;
            _endpoint = endpoint;
            _token = token;
            _tokenSource = tokenSource;
        }

        public string Display => _directory is not null ? "store " + Path.GetFullPath(_directory) : "admin API " + _endpoint!.Display;

        public static async Task<EventSource?> OpenAsync(string value, string? tokenOption, string dataDirectory, CancellationToken ct)
        {
            if (Directory.Exists(value))
            {
                if (!EventArchive.Exists(value))
                {
                    await Console.Error.WriteLineAsync($"proxyguard: --events: no events.db in {value} (give the proxy's --data-dir, or its admin API address)");
                    return null;
                }

                return new EventSource(value, null, null, string.Empty);
            }

            if (File.Exists(value) && Path.GetFileName(value) == "events.db")
            {
                return new EventSource(Path.GetDirectoryName(Path.GetFullPath(value))!, null, null, string.Empty);
            }

            AdminEndpoint endpoint;
            try
            {
                endpoint = AdminEndpoint.Parse(value, "--events");
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync($"proxyguard: --events: '{value}' is neither a directory nor an admin API address ({ex.Message})");
                return null;
            }

            var (token, source) = await EventsCommand.FindTokenAsync(tokenOption, dataDirectory, ct);
            return new EventSource(null, endpoint, token, source);
        }

        public async IAsyncEnumerable<ObservedRequest> ReadAsync(string? client, DateTimeOffset? since, [EnumeratorCancellation] CancellationToken ct)
        {
            if (_directory is not null)
            {
                using var archive = EventArchive.Open(_directory);
                foreach (var e in archive.ReadAll(0, string.IsNullOrEmpty(client) ? null : client))
                {
                    ct.ThrowIfCancellationRequested();
                    if (since is null || e.Time >= since)
                    {
                        yield return ToObserved(e);
                    }
                }

                yield break;
            }

            using var http = _endpoint!.CreateClient(TimeSpan.FromSeconds(30));
            if (_token is not null)
            {
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            }

            var cursor = 0L;
            var filter = string.IsNullOrEmpty(client) ? string.Empty : "&client=" + Uri.EscapeDataString(client);
            while (true)
            {
                using var response = await http.GetAsync($"api/events?after={cursor.ToString(CultureInfo.InvariantCulture)}&limit={PageSize.ToString(CultureInfo.InvariantCulture)}{filter}", ct);
                if (!response.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"the admin API at {_endpoint.Display} answered {(int)response.StatusCode}" +
                        (response.StatusCode == System.Net.HttpStatusCode.Unauthorized ? $" (missing or wrong admin token; {_tokenSource})" : string.Empty));
                }

                EventPage? page;
                try
                {
                    page = JsonSerializer.Deserialize<EventPage>(await response.Content.ReadAsStringAsync(ct), AuditJson.Options);
                }
                catch (JsonException)
                {
                    page = null;
                }

                if (page is null)
                {
                    throw new InvalidOperationException($"{_endpoint.Display} answered something that is not an events page (is --events the admin listener?)");
                }

                foreach (var e in page.Events)
                {
                    if (since is null || e.Time >= since)
                    {
                        yield return ToObserved(e);
                    }
                }

                if (page.Events.Count == 0 || page.Next <= cursor)
                {
                    yield break;
                }

                cursor = page.Next;
            }
        }
    }
}
