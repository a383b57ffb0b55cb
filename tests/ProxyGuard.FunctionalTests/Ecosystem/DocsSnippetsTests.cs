using System.CommandLine;
using System.Text;
using System.Text.RegularExpressions;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Ecosystem;

/// <summary>
/// The documentation agrees with the code (issue 19): every policy snippet in the docs passes
/// <c>proxyguard policy check</c>, every <c>proxyguard ...</c> command line in them parses (the parser of the
/// real binary: commands, options, required arguments and value checks such as <c>--decision</c>), and every
/// option a synopsis (<c>proxyguard run [--policy FILE] ...</c>) names exists. The getting-started guides are
/// also run end to end by <see cref="DocsCommandsTests"/>.
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
}
