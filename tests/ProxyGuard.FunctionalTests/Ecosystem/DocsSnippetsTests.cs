using System.CommandLine;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using ProxyGuard.Audit;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.Policy.Decisions;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// The documentation agrees with the code (issue 19): every policy snippet in the docs passes
/// <c>proxyguard policy check</c>, every <c>proxyguard ...</c> command line in them parses (the parser of the
/// real binary: commands, options, required arguments and value checks such as <c>--decision</c>), and every
/// option a synopsis (<c>proxyguard run [--policy FILE] ...</c>) names exists, every <c>--flag</c> the prose names
/// exists on a proxyguard command (or on the repository script or external tool it belongs to), every JSON event
/// example has the shape of a real event, every reason the docs name is in the closed reason set, the user docs name
/// no type of the code, and every relative link resolves (file and heading). The getting-started guides are also run
/// end to end by <see cref="DocsCommandsTests"/>.
/// </summary>
/// <remarks>
/// Fences: <c>```yaml</c> holding policy keys at the top level is a policy (a fragment without <c>version</c>
/// gets <c>version: 1</c>); <c>```yaml outline</c> is a skeleton and is not checked; other YAML (cases, Compose,
/// Prometheus) is not a policy. Commands are read from <c>sh</c> and <c>text</c> blocks and from inline code.
/// </remarks>
public sealed partial class DocsSnippetsTests
{
    private static readonly HashSet<string> PolicyKeys = new(StringComparer.Ordinal)
    {
        "version", "mode", "default", "clients", "network", "rules", "content", "secrets", "tls",
    };

    internal sealed record Block(string File, int Line, string Info, string Body);

    /// <param name="Inline">In prose (inline code): it may name a command without its required arguments.</param>
    internal sealed record CommandLine(string File, int Line, string Text, bool Synopsis, bool Inline = false);

    internal static IEnumerable<string> DocFiles() =>
        Directory.GetFiles(Repo.PathOf("docs"), "*.md").Append(Repo.PathOf("README.md")).Order(StringComparer.Ordinal);

    private static string Where(string file, int line) => $"{Path.GetRelativePath(Repo.Root, file)}:{line}";

    [Fact]
    public async Task Every_policy_snippet_in_the_docs_passes_policy_check()
    {
        using var dir = new TempDir();
        var snippets = new Dictionary<string, string>(StringComparer.Ordinal); // temp file -> doc position
        foreach (var block in DocFiles().SelectMany(Blocks).Where(b => b.Info == "yaml"))
        {
            var keys = TopLevelKey().Matches(block.Body).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
            if (keys.Count == 0 || !keys.IsSubsetOf(PolicyKeys))
            {
                continue; // cases, Compose, Prometheus...
            }

            var text = keys.Contains("version") ? block.Body : "version: 1\n" + block.Body;
            var name = $"{Path.GetFileNameWithoutExtension(block.File)}-{block.Line}.yaml";
            snippets[dir.Write(name, text)] = Where(block.File, block.Line);
        }

        Assert.True(snippets.Count >= 5, "expected the policy snippets of policy.md and secrets.md, found " + snippets.Count);
        var result = await Cli.RunAsync(dir.Path, ["policy", "check", .. snippets.Keys]);
        // Warnings (e.g. a secret shown without the rule that reaches its host, in a fragment about secrets) are not
        // problems: `policy check` passes with them.
        var problems = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.Contains(": warning: ", StringComparison.Ordinal))
            .Select(l => snippets.Aggregate(l, (line, s) => line.Replace(s.Key, $"{s.Value} (snippet)", StringComparison.Ordinal)))
            .ToList();
        Assert.True(result.ExitCode == 0 && problems.Count == 0, "policy snippets that do not pass `policy check`:\n" + string.Join('\n', problems));
        Assert.Equal(snippets.Count, result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.Contains(": ok (", StringComparison.Ordinal)));
    }

    [Fact]
    public void Every_proxyguard_command_line_in_the_docs_parses()
    {
        var root = ProxyGuard.Program.CreateRoot();
        var lines = DocFiles().SelectMany(CommandLines).ToList();
        Assert.True(lines.Count(l => !l.Synopsis) >= 60, $"only {lines.Count(l => !l.Synopsis)} command lines found");
        Assert.True(lines.Count(l => l.Synopsis) >= 5, $"only {lines.Count(l => l.Synopsis)} synopses found");

        var failures = new List<string>();
        foreach (var line in lines)
        {
            var problem = line.Synopsis ? CheckSynopsis(root, line.Text) : CheckCommand(root, line.Text, line.Inline);
            if (problem is not null)
            {
                failures.Add($"{Where(line.File, line.Line)}: `proxyguard {line.Text}`: {problem}");
            }
        }

        Assert.True(failures.Count == 0, "command lines in the docs that proxyguard does not accept:\n" + string.Join('\n', failures));
    }

    [Fact]
    public void The_checks_catch_a_wrong_flag_a_bad_value_and_an_invalid_snippet()
    {
        var root = ProxyGuard.Program.CreateRoot();
        Assert.NotNull(CheckCommand(root, "events --decision denied"));
        Assert.NotNull(CheckCommand(root, "run --events-retention 30d"));
        Assert.NotNull(CheckCommand(root, "policy explain policy.yaml GET"));
        Assert.Null(CheckCommand(root, "events --admin 127.0.0.1:9090 --decision deny"));
        Assert.NotNull(CheckSynopsis(root, "run [--retain DURATION]"));
        Assert.Null(CheckSynopsis(root, "run [--events-retain DURATION] [--listen ADDR:PORT|unix:PATH]"));

        var md = "# x\n\nRun `proxyguard evnts --json`.\n\n```sh\nproxyguard env --format yaml > a.env\nproxyguard policy check p.yaml \\\n  --resolve-secret\n```\n";
        var doc = Path.Combine(Path.GetTempPath(), $"pg-docs-{Guid.NewGuid():n}.md");
        File.WriteAllText(doc, md);
        try
        {
            var found = CommandLines(doc).ToList();
            Assert.Equal(["evnts --json", "env --format yaml", "policy check p.yaml --resolve-secret"], found.Select(l => l.Text));
            Assert.Equal([3, 6, 7], found.Select(l => l.Line));
            Assert.All(found, l => Assert.NotNull(CheckCommand(root, l.Text)));
        }
        finally
        {
            File.Delete(doc);
        }
    }

    [Fact]
    public void Every_json_event_example_in_the_docs_has_the_shape_of_a_real_event()
    {
        var events = DocFiles().Sum(f => JsonExamples(f).Count(e => IsEventLike(e.Json)));
        Assert.True(events >= 2, $"expected the event examples of operations.md, found {events}");
        var problems = DocFiles().SelectMany(EventProblems).ToList();
        Assert.True(problems.Count == 0, "event examples that are not what the proxy records:\n" + string.Join('\n', problems));
    }

    [Fact]
    public void Every_flag_the_docs_name_exists_on_a_command()
    {
        var problems = DocFiles().SelectMany(f => FlagProblems(f, AllOptions(ProxyGuard.Program.CreateRoot()))).ToList();
        Assert.True(problems.Count == 0, "flags in the docs that no proxyguard command (nor the script or tool they belong to) has:\n" + string.Join('\n', problems));
    }

    [Fact]
    public void Every_reason_the_docs_name_is_in_the_closed_reason_set()
    {
        var named = DocFiles().SelectMany(NamedReasons).ToList();
        Assert.True(named.Count >= 30, $"only {named.Count} reasons named in the docs");
        var problems = named.Where(r => !IsKnownReason(r.Reason)).Select(r => $"{Where(r.File, r.Line)}: `{r.Reason}` is not a reason ProxyGuard gives").ToList();
        Assert.True(problems.Count == 0, "reasons in the docs outside the closed set (docs/policy.md, Decisions and reasons):\n" + string.Join('\n', problems));
    }

    [Fact]
    public void The_user_docs_name_no_type_of_the_code()
    {
        var denylist = CodeTypeNames();
        Assert.True(denylist.Count >= 200, $"only {denylist.Count} type names found");
        var problems = DocFiles().Where(IsUserDoc).SelectMany(f => TypeNameProblems(f, denylist)).ToList();
        Assert.True(problems.Count == 0, "user docs that name the code's types or cite an unshipped spec (describe the behaviour instead):\n" + string.Join('\n', problems));
    }

    [Fact]
    public void Every_relative_link_in_the_docs_resolves()
    {
        var links = DocFiles().Sum(f => Links(f).Count());
        Assert.True(links >= 40, $"only {links} links found");
        var problems = DocFiles().SelectMany(LinkProblems).ToList();
        Assert.True(problems.Count == 0, "links in the docs that lead nowhere:\n" + string.Join('\n', problems));
    }

    [Fact]
    public void The_detector_table_lists_exactly_the_detectors_of_the_binary()
    {
        var lines = File.ReadAllLines(Repo.PathOf("docs/detectors.md"));
        var start = Array.IndexOf(lines, "## Built-in detectors");
        Assert.True(start >= 0, "docs/detectors.md has no '## Built-in detectors' section");
        var documented = lines.Skip(start + 1).TakeWhile(l => !l.StartsWith("## ", StringComparison.Ordinal))
            .Select(l => Regex.Match(l, @"^\| `([a-z0-9-]+)` \|")).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
        var builtins = ProxyGuard.Inspection.ContentScanner.Builtins.Select(d => d.Id).ToList();
        Assert.Equal(builtins.Order(StringComparer.Ordinal), documented.Order(StringComparer.Ordinal));
        Assert.Contains($"these {builtins.Count} ids", string.Join(' ', lines), StringComparison.Ordinal);
    }

    /// <summary>
    /// One placeholder rule (issue 19: secrets.md recommended a placeholder the validator refused, and two statements of the
    /// rule differed): the policy validator, the secrets library's own check and the JSON Schema agree, and every page
    /// that states the rule links policy.md instead of restating it.
    /// </summary>
    [Fact]
    public void The_placeholder_rule_is_stated_once_and_the_code_agrees_with_it()
    {
        var schema = File.ReadAllText(Repo.PathOf("policies/schema/proxyguard-policy.schema.json"));
        var pattern = Regex.Match(schema, @"""placeholder"":\s*\{[^}]*""pattern"":\s*""([^""]+)""").Groups[1].Value;
        Assert.NotEmpty(pattern);
        string[] candidates = ["PG_SECRET_GITHUB_7f3a9c", "PG_TWELVE_CH", "pg-secret-github-7f3a9c", "PG_SECRET_GITHUB_7f3a9", "PG SECRET GITHUB 7f3a9c",
            new string('A', 256), new string('A', 257)];
        foreach (var candidate in candidates)
        {
            var yaml = $"version: 1\nsecrets:\n  - name: s\n    value: env:S\n    hosts: [a.example]\n    placeholder: \"{candidate}\"\n";
            var validator = ProxyGuard.Policy.PolicyLoader.LoadText(yaml, "p.yaml").Success;
            Assert.True(validator == (ProxyGuard.Secrets.Placeholders.ValidateExplicit(candidate) is null), $"validator and secrets library disagree on '{candidate}'");
            Assert.True(validator == Regex.IsMatch(candidate, pattern), $"validator and JSON Schema disagree on '{candidate}'");
        }

        var policyMd = File.ReadAllText(Repo.PathOf("docs/policy.md"));
        Assert.Contains("| `placeholder` | string, ≥ 16 of `[A-Za-z0-9_]` |", policyMd, StringComparison.Ordinal);
        foreach (var file in DocFiles().Where(f => Path.GetFileName(f) != "policy.md"))
        {
            var text = File.ReadAllText(file);
            if (Regex.IsMatch(text, @"at least 1\d characters|≥ ?1\d of"))
            {
                Assert.True(text.Contains("policy.md#secrets", StringComparison.Ordinal), $"{Path.GetFileName(file)} states the placeholder rule without linking policy.md#secrets");
            }
        }
    }

    [Fact]
    public void The_doc_checks_catch_a_made_up_event_flag_reason_type_name_and_link()
    {
        var md = """
            # Title

            ## Known heading

            A denied request is recorded with reason `blocked-by-policy` and the header `X-ProxyGuard-Reason: denied`.
            Run it with `--retention 30d`, or `--events-retain 30d`. See [here](#known-heading) and [there](#no-such-heading),
            [a page](no-such-page.md) and [policy.md](policy.md#no-such-section). The `PolicyDecider` decides (SPEC 4.2).

            ```json
            {"time":"2026-01-01T00:00:00Z","host":"example.com","action":"block","reason":"Blocked because the host is not allowed"}
            ```

            ```json
            {"id":1,"time":"2026-12-02T22:32:13.439353+00:00","client":null,"clientAddress":"127.0.0.1",
             "kind":"request","method":"GET","scheme":"https","host":"example.com","port":443,"path":"/",
             "decision":"denied","rule":"default","reason":"no-rule-matched","findings":[],
             "secretsInjected":[],"status":403,"requestBytes":0,"responseBytes":0,"durationMs":0}
            ```
            """;
        using var dir = new TempDir();
        var doc = dir.Write("sample.md", md);
        File.Copy(Repo.PathOf("docs/policy.md"), dir.File("policy.md"));

        var events = EventProblems(doc).ToList();
        Assert.Contains(events, p => p.Contains("sample.md:9:", StringComparison.Ordinal) && p.Contains("'action'", StringComparison.Ordinal));
        Assert.Contains(events, p => p.Contains("sample.md:9:", StringComparison.Ordinal) && p.Contains("Blocked because", StringComparison.Ordinal));
        Assert.Contains(events, p => p.Contains("sample.md:13:", StringComparison.Ordinal) && p.Contains("'denied'", StringComparison.Ordinal));
        Assert.Single(events, p => p.Contains("sample.md:13:", StringComparison.Ordinal));

        var flags = FlagProblems(doc, AllOptions(ProxyGuard.Program.CreateRoot())).ToList();
        Assert.Equal(["--retention"], flags.Select(p => Regex.Match(p, "`(--[a-z-]+)").Groups[1].Value));

        Assert.Equal(["blocked-by-policy", "denied"], NamedReasons(doc).Where(r => !IsKnownReason(r.Reason)).Select(r => r.Reason).Order(StringComparer.Ordinal));

        var types = TypeNameProblems(doc, CodeTypeNames()).ToList();
        Assert.Equal(2, types.Count);
        Assert.Contains(types, p => p.Contains("PolicyDecider", StringComparison.Ordinal));
        Assert.Contains(types, p => p.Contains("SPEC", StringComparison.Ordinal));

        var links = LinkProblems(doc).ToList();
        Assert.Equal(3, links.Count);
        Assert.Contains(links, p => p.Contains("#no-such-heading", StringComparison.Ordinal));
        Assert.Contains(links, p => p.Contains("no-such-page.md", StringComparison.Ordinal));
        Assert.Contains(links, p => p.Contains("policy.md#no-such-section", StringComparison.Ordinal));
    }

    // ---- JSON event examples ----

    internal sealed record JsonExample(string File, int Line, string Text, JsonElement Json);

    /// <summary>
    /// Every JSON value in a <c>```json</c> block (one value, or one per line), and every line of another block that starts
    /// with <c>{"id":</c> (output of <c>proxyguard events --json</c>). A json block that does not parse is reported by
    /// <see cref="EventProblems"/>.
    /// </summary>
    private static IEnumerable<JsonExample> JsonExamples(string file) => JsonExamplesAndErrors(file).OfType<JsonExample>();

    private static IEnumerable<object> JsonExamplesAndErrors(string file)
    {
        foreach (var block in Blocks(file))
        {
            if (block.Info == "json")
            {
                if (TryParse(block.Body) is { } whole)
                {
                    yield return new JsonExample(block.File, block.Line, block.Body, whole);
                    continue;
                }

                var lines = block.Body.Split('\n');
                for (var i = 0; i < lines.Length; i++)
                {
                    if (lines[i].Trim().Length == 0)
                    {
                        continue;
                    }

                    yield return TryParse(lines[i]) is { } one
                        ? new JsonExample(block.File, block.Line + 1 + i, lines[i], one)
                        : $"{Where(block.File, block.Line)}: not JSON (one value, or one value per line)";
                }
            }
            else
            {
                var lines = block.Body.Split('\n');
                for (var i = 0; i < lines.Length; i++)
                {
                    if (lines[i].TrimStart().StartsWith("{\"id\":", StringComparison.Ordinal) && TryParse(lines[i]) is { } one)
                    {
                        yield return new JsonExample(block.File, block.Line + 1 + i, lines[i], one);
                    }
                }
            }
        }
    }

    private static JsonElement? TryParse(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>An object with a field an audit event has and other JSON in the docs does not (or the made-up <c>action</c>).</summary>
    private static bool IsEventLike(JsonElement json) =>
        json.ValueKind == JsonValueKind.Object
        && json.EnumerateObject().Any(p => p.Name is "decision" or "reason" or "kind" or "action" or "secretsInjected");

    internal static IEnumerable<string> EventProblems(string file)
    {
        var fields = typeof(AuditEvent).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .ToDictionary(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name), p => p.GetCustomAttribute<JsonIgnoreAttribute>() is null, StringComparer.Ordinal);
        var findingFields = typeof(AuditFinding).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name)).ToHashSet(StringComparer.Ordinal);
        var decisions = Constants(typeof(AuditDecisions));
        var kinds = Constants(typeof(AuditKinds));
        string[] findingActions = ["deny", "redact", "log"];

        foreach (var item in JsonExamplesAndErrors(file))
        {
            if (item is string error)
            {
                yield return error;
                continue;
            }

            var example = (JsonExample)item;
            if (!IsEventLike(example.Json))
            {
                continue;
            }

            var at = Where(example.File, example.Line);
            var json = example.Json;
            var present = json.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var unknown in present.Where(n => !fields.ContainsKey(n)))
            {
                yield return $"{at}: an event has no field '{unknown}' (fields: {string.Join(", ", fields.Keys)})";
            }

            foreach (var missing in fields.Where(f => f.Value && !present.Contains(f.Key)).Select(f => f.Key))
            {
                yield return $"{at}: every event has '{missing}' (absent values are null)";
            }

            if (json.TryGetProperty("decision", out var decision) && !(decision.ValueKind == JsonValueKind.String && decisions.Contains(decision.GetString()!)))
            {
                yield return $"{at}: decision '{decision}' is not one of {string.Join(", ", decisions)}";
            }

            if (json.TryGetProperty("kind", out var kind) && !(kind.ValueKind == JsonValueKind.String && kinds.Contains(kind.GetString()!)))
            {
                yield return $"{at}: kind '{kind}' is not one of {string.Join(", ", kinds)}";
            }

            if (json.TryGetProperty("reason", out var reason) && reason.ValueKind != JsonValueKind.Null
                && !(reason.ValueKind == JsonValueKind.String && IsKnownReason(reason.GetString()!)))
            {
                yield return $"{at}: reason '{reason}' is not in the closed reason set";
            }

            if (json.TryGetProperty("findings", out var findings) && findings.ValueKind == JsonValueKind.Array)
            {
                foreach (var finding in findings.EnumerateArray())
                {
                    var names = finding.ValueKind == JsonValueKind.Object ? finding.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal) : [];
                    if (!names.SetEquals(findingFields)
                        || !findingActions.Contains(finding.GetProperty("action").GetString(), StringComparer.Ordinal))
                    {
                        yield return $"{at}: a finding is {{{string.Join(", ", findingFields)}}} with action {string.Join(", ", findingActions)}, not {finding}";
                    }
                }
            }

            string? typeError = null;
            try
            {
                _ = JsonSerializer.Deserialize<AuditEvent>(json.GetRawText(), AuditJson.Options);
            }
            catch (JsonException ex)
            {
                typeError = ex.Message;
            }

            if (typeError is not null)
            {
                yield return $"{at}: does not read as an event: {typeError}";
            }
        }
    }

    private static HashSet<string> Constants(Type type) =>
        type.GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToHashSet(StringComparer.Ordinal);

    // ---- Reasons ----

    internal sealed record NamedReason(string File, int Line, string Reason);

    /// <summary>Grant events carry <c>grant-</c> + what happened to the grant (docs/operations.md, event schema).</summary>
    private static readonly string[] GrantEventReasons = ["grant-created", "grant-revoked", "grant-expired"];

    /// <summary>In the closed set; <c>upstream-*</c> stands for the reasons it prefixes (at least one).</summary>
    private static bool IsKnownReason(string reason) =>
        reason.EndsWith('*')
            ? Reasons.All.Keys.Any(r => r.StartsWith(reason[..^1], StringComparison.Ordinal))
            : Reasons.All.ContainsKey(reason) || GrantEventReasons.Contains(reason, StringComparer.Ordinal);

    /// <summary>
    /// Reasons the docs name: <c>X-ProxyGuard-Reason: R</c>, <c>reason: R</c> / <c>"reason":"R"</c> (also in code blocks, as
    /// explain and events print them), and in prose the code spans right after the word reason (<c>reason `R`</c>,
    /// <c>reasons `A`, `B` or `C`</c>).
    /// </summary>
    internal static IEnumerable<NamedReason> NamedReasons(string file)
    {
        var lines = File.ReadAllLines(file);
        var inBlock = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock;
                continue;
            }

            foreach (Match m in ReasonHeader().Matches(line))
            {
                yield return new NamedReason(file, i + 1, m.Groups[1].Value);
            }

            foreach (Match m in ReasonField().Matches(line))
            {
                yield return new NamedReason(file, i + 1, m.Groups[1].Value);
            }

            if (inBlock)
            {
                continue;
            }

            foreach (Match m in ReasonInProse().Matches(line))
            {
                foreach (Match span in CodeSpan().Matches(m.Groups[1].Value))
                {
                    if (ReasonLike().IsMatch(span.Groups[1].Value))
                    {
                        yield return new NamedReason(file, i + 1, span.Groups[1].Value);
                    }
                }
            }
        }
    }

    // ---- Flags ----

    /// <summary>Every option (and alias) of every proxyguard command.</summary>
    internal static HashSet<string> AllOptions(Command root)
    {
        var all = new HashSet<string>(StringComparer.Ordinal) { "--help", "--version" };
        var stack = new Stack<Command>([root]);
        while (stack.TryPop(out var command))
        {
            foreach (var option in command.Options)
            {
                all.Add(option.Name);
                all.UnionWith(option.Aliases);
            }

            foreach (var sub in command.Subcommands)
            {
                stack.Push(sub);
            }
        }

        return all;
    }

    /// <summary>Flags of tools the docs show that are not in this repository (Chromium's, in the agent-operator guide).</summary>
    private static readonly string[] ExternalToolFlags = ["--proxy-server", "--ignore-certificate-errors-spki-list"];

    private static readonly Lazy<string> RepositoryScripts = new(() => string.Join('\n',
        new[] { "bench", "samples", "fuzz" }.Select(Repo.PathOf).Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories))
            .Where(f => !f.EndsWith(".md", StringComparison.Ordinal) && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(File.ReadAllText)));

    /// <summary>
    /// A code span in prose that starts with <c>--flag</c> (<c>`--events-retain DURATION`</c>): the flag must be an option of
    /// a proxyguard command, else of a script in bench/, samples/ or fuzz/ (the benchmarks, the bubblewrap wrapper), else
    /// of a named external tool. Command lines and synopses are checked against their own command by
    /// <see cref="Every_proxyguard_command_line_in_the_docs_parses"/>.
    /// </summary>
    internal static IEnumerable<string> FlagProblems(string file, HashSet<string> options)
    {
        var lines = File.ReadAllLines(file);
        var inBlock = false;
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock;
                continue;
            }

            if (inBlock)
            {
                continue;
            }

            foreach (Match span in CodeSpan().Matches(lines[i]))
            {
                if (LeadingFlag().Match(span.Groups[1].Value) is not { Success: true } flag)
                {
                    continue;
                }

                var name = flag.Groups[1].Value;
                if (options.Contains(name) || ExternalToolFlags.Contains(name, StringComparer.Ordinal)
                    || Regex.IsMatch(RepositoryScripts.Value, Regex.Escape(name) + @"(?![a-z0-9-])"))
                {
                    continue;
                }

                yield return $"{Where(file, i + 1)}: `{name}` is not an option of any proxyguard command";
            }
        }
    }

    // ---- Type names ----

    /// <summary>
    /// Pages about the implementation, for the people who change it: they name its types on purpose. Every other page is
    /// for users (agent operators, policy authors, operators) and describes behaviour.
    /// </summary>
    internal static bool IsUserDoc(string file)
    {
        var name = Path.GetFileName(file);
        return !(name is "architecture.md" or "reliability.md" || name.StartsWith("performance", StringComparison.Ordinal));
    }

    /// <summary>
    /// The names of the code's own types (public and internal, every assembly the binary is built from) that cannot be
    /// read as an ordinary word: at least two capitals (<c>PolicyDecider</c>, not <c>Reason</c> or <c>Leaf</c>).
    /// </summary>
    internal static HashSet<string> CodeTypeNames()
    {
        Type[] anchors = [typeof(ProxyGuard.Program), typeof(Reasons), typeof(AuditEvent), typeof(ProxyGuard.Secrets.Placeholders),
            typeof(ProxyGuard.Inspection.ContentScanner), typeof(ProxyGuard.Engine.Certificates.CertificateAuthority)];
        return anchors.Select(t => t.Assembly).Distinct()
            .SelectMany(a => a.GetTypes())
            .Where(t => !t.IsDefined(typeof(CompilerGeneratedAttribute), false) && t.Namespace?.StartsWith("ProxyGuard", StringComparison.Ordinal) == true)
            .Select(t => t.Name.Split('`')[0])
            .Where(n => !n.Contains('<', StringComparison.Ordinal) && n.Count(char.IsUpper) >= 2 && n.Length >= 6)
            .ToHashSet(StringComparer.Ordinal);
    }

    internal static IEnumerable<string> TypeNameProblems(string file, HashSet<string> denylist)
    {
        var lines = File.ReadAllLines(file);
        for (var i = 0; i < lines.Length; i++)
        {
            foreach (Match m in Identifier().Matches(lines[i]))
            {
                if (denylist.Contains(m.Value))
                {
                    yield return $"{Where(file, i + 1)}: names the type {m.Value}";
                }
            }

            if (SpecCitation().IsMatch(lines[i]))
            {
                yield return $"{Where(file, i + 1)}: cites SPEC, which is not shipped";
            }
        }
    }

    // ---- Links ----

    internal sealed record Link(string File, int Line, string Target);

    /// <summary>Markdown links <c>[text](target)</c> outside code blocks and code spans.</summary>
    internal static IEnumerable<Link> Links(string file)
    {
        var lines = File.ReadAllLines(file);
        var inBlock = false;
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock;
                continue;
            }

            if (inBlock)
            {
                continue;
            }

            foreach (Match m in MarkdownLink().Matches(CodeSpan().Replace(lines[i], "``")))
            {
                yield return new Link(file, i + 1, m.Groups[1].Value);
            }
        }
    }

    /// <summary>A relative link names a file or directory that exists and, with <c>#anchor</c>, a heading of that page.</summary>
    internal static IEnumerable<string> LinkProblems(string file)
    {
        foreach (var link in Links(file))
        {
            if (Regex.IsMatch(link.Target, "^[a-z][a-z0-9+.-]*:", RegexOptions.IgnoreCase))
            {
                continue; // https:, mailto:
            }

            var hash = link.Target.IndexOf('#', StringComparison.Ordinal);
            var path = hash < 0 ? link.Target : link.Target[..hash];
            var anchor = hash < 0 ? null : link.Target[(hash + 1)..];
            var target = path.Length == 0 ? file : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, Uri.UnescapeDataString(path)));
            if (!File.Exists(target) && !Directory.Exists(target))
            {
                yield return $"{Where(link.File, link.Line)}: ({link.Target}): no such file";
                continue;
            }

            if (anchor is not null && target.EndsWith(".md", StringComparison.Ordinal) && !Anchors(target).Contains(anchor))
            {
                yield return $"{Where(link.File, link.Line)}: ({link.Target}): {Path.GetFileName(target)} has no heading with that anchor";
            }
        }
    }

    /// <summary>The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces to '-', -1, -2 for repeats).</summary>
    internal static HashSet<string> Anchors(string file)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var inBlock = false;
        foreach (var line in File.ReadLines(file))
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock;
                continue;
            }

            if (inBlock || HeadingLine().Match(line) is not { Success: true } heading)
            {
                foreach (Match id in HtmlAnchor().Matches(line))
                {
                    anchors.Add(id.Groups[1].Value);
                }

                continue;
            }

            var text = MarkdownLink().Replace(heading.Groups[1].Value, m => m.Value[1..m.Value.IndexOf(']', StringComparison.Ordinal)]);
            var slug = SlugDrop().Replace(text.Trim().ToLowerInvariant(), string.Empty).Replace(' ', '-');
            var unique = slug;
            for (var n = 1; !anchors.Add(unique); n++)
            {
                unique = $"{slug}-{n}";
            }
        }

        return anchors;
    }

    /// <summary>Null when <paramref name="text"/> (arguments after <c>proxyguard</c>) parses without error.</summary>
    internal static string? CheckCommand(RootCommand root, string text, bool inline = false)
    {
        var args = ShellWords(text);
        if (args is null)
        {
            return "cannot split into words";
        }

        var parse = root.Parse(ProxyGuard.Program.HelpAlias([.. args]));
        var errors = parse.Errors.Select(e => e.Message.ReplaceLineEndings(" "))
            .Where(e => !(inline && e.StartsWith("Required argument missing", StringComparison.Ordinal)))
            .ToList();
        return errors.Count == 0 ? null : string.Join("; ", errors);
    }

    /// <summary>Null when the command path of a synopsis exists and has every option the synopsis names.</summary>
    internal static string? CheckSynopsis(RootCommand root, string text)
    {
        Command command = root;
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words is ["help", ..])
        {
            words = words[1..]; // `proxyguard help [COMMAND]`: the alias of --help
            if (words.Length == 0 || !words[0].StartsWith('['))
            {
                return null;
            }
        }

        foreach (var word in words)
        {
            var name = word.Split('|')[0];
            if (command.Subcommands.FirstOrDefault(c => c.Name == name) is { } sub)
            {
                command = sub;
            }
            else
            {
                break;
            }
        }

        if (command == root && !text.StartsWith("help", StringComparison.Ordinal))
        {
            return "no such command";
        }

        var known = command.Options.SelectMany(o => o.Aliases.Append(o.Name)).Append("--help").Append("-h").ToHashSet(StringComparer.Ordinal);
        var unknown = OptionName().Matches(text).Select(m => m.Value).Where(o => !known.Contains(o)).Distinct(StringComparer.Ordinal).ToList();
        return unknown.Count == 0 ? null : $"'{command.Name}' has no option {string.Join(", ", unknown)}";
    }

    internal static IEnumerable<Block> Blocks(string file)
    {
        var lines = File.ReadAllLines(file);
        for (var i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith("```", StringComparison.Ordinal) || lines[i].Length == 3)
            {
                continue;
            }

            var info = lines[i][3..].Trim();
            var start = i;
            var body = new StringBuilder();
            for (i++; i < lines.Length && !lines[i].StartsWith("```", StringComparison.Ordinal); i++)
            {
                body.Append(lines[i]).Append('\n');
            }

            yield return new Block(file, start + 1, info, body.ToString());
        }
    }

    /// <summary>
    /// Every <c>proxyguard</c> invocation: in <c>sh</c> and <c>text</c> blocks (continuation lines joined, heredoc
    /// bodies skipped, cut at the first shell operator), and in inline code. A line with <c>[-</c>, <c>[FILE</c>, <c>...</c> or
    /// an upper-case placeholder alternative is a synopsis.
    /// </summary>
    internal static IEnumerable<CommandLine> CommandLines(string file)
    {
        var lines = File.ReadAllLines(file);
        var inBlock = false;
        var shellBlock = false;
        string? heredoc = null;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock;
                var info = inBlock ? line[3..].Trim() : string.Empty;
                shellBlock = inBlock && (info == "text" || info == "sh" || info.StartsWith("sh ", StringComparison.Ordinal));
                heredoc = null;
                continue;
            }

            if (inBlock)
            {
                if (!shellBlock)
                {
                    continue;
                }

                if (heredoc is not null)
                {
                    if (line.Trim() == heredoc)
                    {
                        heredoc = null;
                    }

                    continue;
                }

                var first = i;
                var joined = line;
                while (joined.EndsWith('\\') && i + 1 < lines.Length)
                {
                    joined = joined[..^1].TrimEnd() + " " + lines[++i].Trim();
                }

                if (HeredocStart().Match(joined) is { Success: true } h)
                {
                    heredoc = h.Groups[1].Value;
                }

                foreach (Match m in Invocation().Matches(joined))
                {
                    var raw = m.Groups[1].Value.Trim();
                    if (IsSynopsis(raw))
                    {
                        yield return new CommandLine(file, first + 1, raw, Synopsis: true);
                    }
                    else if (Cut(raw) is { Length: > 0 } text)
                    {
                        yield return new CommandLine(file, first + 1, text, Synopsis: false);
                    }
                }

                continue;
            }

            foreach (Match m in InlineInvocation().Matches(line))
            {
                var text = m.Groups[1].Value.Trim();
                yield return new CommandLine(file, i + 1, IsSynopsis(text) ? text : Cut(text), IsSynopsis(text), Inline: true);
            }
        }
    }

    private static bool IsSynopsis(string text) =>
        SynopsisBracket().IsMatch(text) || text.Contains("...", StringComparison.Ordinal) || text.Contains('…', StringComparison.Ordinal)
        || SynopsisAlternative().IsMatch(text);

    /// <summary>The words of one command, up to the first shell operator or comment (outside quotes).</summary>
    private static string Cut(string text)
    {
        var sb = new StringBuilder();
        char? quote = null;
        var depth = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote is { } q)
            {
                if (c == q)
                {
                    quote = null;
                }
                else if (c == '$' && q == '"' && i + 1 < text.Length && text[i + 1] == '(')
                {
                    depth++;
                }
                else if (c == ')' && depth > 0)
                {
                    depth--;
                }

                sb.Append(c);
                continue;
            }

            if (c is '\'' or '"')
            {
                quote = c;
                sb.Append(c);
                continue;
            }

            if (c == '$' && i + 1 < text.Length && text[i + 1] == '(')
            {
                var close = text.IndexOf(')', i);
                if (close < 0)
                {
                    break;
                }

                sb.Append(text, i, close - i + 1);
                i = close;
                continue;
            }

            if (c is '|' or ';' or '&' or '>' or '<' or ')' or '`' || (c == '#' && (i == 0 || text[i - 1] == ' ')))
            {
                break;
            }

            sb.Append(c);
        }

        // A trailing file descriptor of a redirection ("2>&1", "2> log").
        return TrailingFd().Replace(sb.ToString(), string.Empty).Trim();
    }

    /// <summary>POSIX-shell words: quotes removed, variables left as they are (their values do not change parsing).</summary>
    private static List<string>? ShellWords(string text)
    {
        var words = new List<string>();
        var current = new StringBuilder();
        var inWord = false;
        char? quote = null;
        foreach (var c in text)
        {
            if (quote is { } q)
            {
                if (c == q)
                {
                    quote = null;
                }
                else
                {
                    current.Append(c);
                }

                continue;
            }

            if (c is '\'' or '"')
            {
                quote = c;
                inWord = true;
                continue;
            }

            if (c is ' ' or '\t')
            {
                if (inWord)
                {
                    words.Add(current.ToString());
                    current.Clear();
                    inWord = false;
                }

                continue;
            }

            current.Append(c);
            inWord = true;
        }

        if (quote is not null)
        {
            return null;
        }

        if (inWord)
        {
            words.Add(current.ToString());
        }

        return words;
    }

    [GeneratedRegex(@"\[(?:-|[A-Z])")]
    private static partial Regex SynopsisBracket();

    [GeneratedRegex(@"^([a-z_]+):", RegexOptions.Multiline)]
    private static partial Regex TopLevelKey();

    [GeneratedRegex(@"--[a-z][a-z0-9-]*")]
    private static partial Regex OptionName();

    [GeneratedRegex(@"(?:^\s*|[;&|(!]\s*|\$\(\s*|(?:timeout\s+\d+|then|do|else|if|exec)\s+)proxyguard\s+([^\n]*)")]
    private static partial Regex Invocation();

    [GeneratedRegex(@"`proxyguard ([^`]+)`")]
    private static partial Regex InlineInvocation();

    [GeneratedRegex(@"<<-?\s*'?""?([A-Za-z_]+)'?""?")]
    private static partial Regex HeredocStart();

    [GeneratedRegex(@"\s\d$")]
    private static partial Regex TrailingFd();

    /// <summary>An alternative of placeholders or a command list such as <c>check|explain|test</c>.</summary>
    [GeneratedRegex(@"\b[a-zA-Z:_-]+\|[a-zA-Z:_-]+")]
    private static partial Regex SynopsisAlternative();

    [GeneratedRegex(@"X-ProxyGuard-Reason:\s*`?([a-z0-9*-]+)")]
    private static partial Regex ReasonHeader();

    [GeneratedRegex(@"(?<![-\w])""?reason""?\s*[:=]\s*""?([a-z][a-z0-9*-]*)")]
    private static partial Regex ReasonField();

    [GeneratedRegex(@"(?<![-\w])[Rr]easons?:?\s+((?:`[^`\s]+`(?:,\s*|,?\s+or\s+|,?\s+and\s+|\s*/\s*)?)+)")]
    private static partial Regex ReasonInProse();

    [GeneratedRegex(@"^[a-z][a-z0-9]*(?:-[a-z0-9*]+)*$")]
    private static partial Regex ReasonLike();

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"^(--[a-z][a-z0-9-]*)")]
    private static partial Regex LeadingFlag();

    [GeneratedRegex(@"\b[A-Z][A-Za-z0-9]+\b")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"\bSPEC\b")]
    private static partial Regex SpecCitation();

    [GeneratedRegex(@"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+""[^""]*"")?\)")]
    private static partial Regex MarkdownLink();

    [GeneratedRegex(@"^#{1,6}\s+(.*?)\s*#*\s*$")]
    private static partial Regex HeadingLine();

    [GeneratedRegex(@"<a\s+(?:id|name)=""([^""]+)""")]
    private static partial Regex HtmlAnchor();

    [GeneratedRegex(@"[^\p{L}\p{Nd}\p{Mn}\p{Pc} -]")]
    private static partial Regex SlugDrop();
}
