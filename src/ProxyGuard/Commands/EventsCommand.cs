using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ProxyGuard.Audit;
using ProxyGuard.Audit.Chain;
using ProxyGuard.Engine.Hosting;

namespace ProxyGuard.Commands;

/// <summary><c>proxyguard events</c>: pulls audit events from a running proxy's admin API.</summary>
internal static class EventsCommand
{
    internal static readonly string[] Decisions = [AuditDecisions.Allow, AuditDecisions.Deny, AuditDecisions.AuditDeny];

    /// <summary>Words people use for the decisions (and the "action" of other tools' events), for "did you mean".</summary>
    private static readonly Dictionary<string, string> DecisionAliases = new(StringComparer.Ordinal)
    {
        ["denied"] = AuditDecisions.Deny, ["block"] = AuditDecisions.Deny, ["blocked"] = AuditDecisions.Deny, ["refused"] = AuditDecisions.Deny,
        ["reject"] = AuditDecisions.Deny, ["rejected"] = AuditDecisions.Deny, ["drop"] = AuditDecisions.Deny,
        ["allowed"] = AuditDecisions.Allow, ["pass"] = AuditDecisions.Allow, ["permit"] = AuditDecisions.Allow, ["permitted"] = AuditDecisions.Allow,
        ["audit"] = AuditDecisions.AuditDeny, ["audit-denied"] = AuditDecisions.AuditDeny, ["auditdeny"] = AuditDecisions.AuditDeny, ["would-deny"] = AuditDecisions.AuditDeny,
    };

    private const int PageSize = 500;

    public static Command Create()
    {
        var admin = new Option<string>("--admin") { Description = "Admin API: ADDR:PORT, http://ADDR:PORT or unix:/path.sock.", DefaultValueFactory = _ => "127.0.0.1:9090" };
        var after = new Option<long>("--after") { Description = "Only events with a larger id." }.WholeNumber("an event id");
        var since = new Option<string?>("--since") { Description = "Only events at or after this time: a duration ago (90s, 15m, 2h, 7d) or a UTC time (2026-01-31T12:00:00Z)." };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep pulling new events." };
        var decision = new Option<string?>("--decision") { Description = "allow | deny | audit-deny" }.OneOf(Decisions, DecisionAliases);
        var client = new Option<string?>("--client") { Description = "Client id." };
        var host = new Option<string?>("--host") { Description = "Host (normalised)." };
        var json = new Option<bool>("--json") { Description = "One JSON object per line (for SIEM shipping)." };
        var token = new Option<string?>("--token") { Description = "Admin token (default: PROXYGUARD_ADMIN_TOKEN, then DATA_DIR/admin.token)." }.NotEmpty();
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory holding admin.token.", DefaultValueFactory = _ => ".proxyguard" }.NotEmpty();

        admin.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0)
            {
                try
                {
                    AdminEndpoint.Parse(result.Tokens[^1].Value, "--admin");
                }
                catch (ArgumentException ex)
                {
                    result.AddError(ex.Message);
                }
            }
        });
        since.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && !TryParseSince(result.Tokens[^1].Value, DateTimeOffset.UtcNow, out _))
            {
                result.AddError($"--since: expected a duration such as 15m, 2h or 7d, or a time such as 2026-01-31T12:00:00Z, got '{result.Tokens[^1].Value}'");
            }
        });

        var command = new Command("events", "Pull audit events from a running proxy.") { admin, after, since, follow, decision, client, host, json, token, dataDir, CreateVerify(), CreateCheckpointKey() };
        command.SetAction(async (parse, ct) =>
        {
            var endpoint = AdminEndpoint.Parse(parse.GetValue(admin)!, "--admin");
            var (adminToken, tokenSource) = await FindTokenAsync(parse.GetValue(token), parse.GetValue(dataDir)!, ct);
            DateTimeOffset? from = null;
            if (parse.GetValue(since) is { } sinceText)
            {
                TryParseSince(sinceText, DateTimeOffset.UtcNow, out var parsed);
                from = parsed;
            }

            using var http = endpoint.CreateClient(TimeSpan.FromSeconds(30));
            if (adminToken is not null)
            {
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
            }

            var filters = Filter("decision", parse.GetValue(decision)) + Filter("client", parse.GetValue(client)) + Filter("host", parse.GetValue(host));
            var cursor = parse.GetValue(after);
            var asJson = parse.GetValue(json);
            var table = new EventTable(UseColour());
            var printed = 0L;
            while (!ct.IsCancellationRequested)
            {
                var query = $"api/events?after={cursor.ToString(CultureInfo.InvariantCulture)}&limit=" + PageSize.ToString(CultureInfo.InvariantCulture) + filters;
                HttpResponseMessage response;
                try
                {
                    response = await http.GetAsync(query, ct);
                }
                catch (HttpRequestException ex)
                {
                    await Console.Error.WriteLineAsync($"proxyguard: cannot reach the admin API at {endpoint.Display} (--admin): {RunCommand.OneLine(ex.Message)}");
                    return ExitCodes.Failed;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break; // SIGINT/SIGTERM while following: a clean stop
                }
                catch (TaskCanceledException)
                {
                    await Console.Error.WriteLineAsync($"proxyguard: the admin API at {endpoint.Display} did not answer within 30 s");
                    return ExitCodes.Failed;
                }

                if (response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable && parse.GetValue(follow))
                {
                    // The central event store is unreachable for now: a follower waits and asks again from its cursor.
                    response.Dispose();
                }
                else
                {
                    using (response)
                    {
                        if (!response.IsSuccessStatusCode)
                        {
                            await Console.Error.WriteLineAsync($"proxyguard: the admin API at {endpoint.Display} answered {(int)response.StatusCode}" +
                                (response.StatusCode == System.Net.HttpStatusCode.Unauthorized ? $" (missing or wrong admin token; {tokenSource})" : string.Empty));
                            return ExitCodes.Failed;
                        }

                        JsonDocument doc;
                        try
                        {
                            doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                        }
                        catch (JsonException)
                        {
                            await Console.Error.WriteLineAsync($"proxyguard: {endpoint.Display} answered something that is not an events page (is --admin the admin listener?)");
                            return ExitCodes.Failed;
                        }
                        catch (OperationCanceledException) when (ct.IsCancellationRequested)
                        {
                            break;
                        }

                        using var page = doc;
                        if (doc.RootElement.ValueKind != JsonValueKind.Object
                            || !doc.RootElement.TryGetProperty("events", out var events) || events.ValueKind != JsonValueKind.Array
                            || !doc.RootElement.TryGetProperty("next", out var next) || !next.TryGetInt64(out var nextId))
                        {
                            await Console.Error.WriteLineAsync($"proxyguard: {endpoint.Display} answered something that is not an events page (is --admin the admin listener?)");
                            return ExitCodes.Failed;
                        }

                        var selected = events.EnumerateArray().Where(e => from is null || EventTime(e) is not { } t || t >= from).ToList();
                        if (asJson)
                        {
                            foreach (var e in selected)
                            {
                                Console.WriteLine(e.GetRawText());
                            }
                        }
                        else
                        {
                            Console.Write(table.Render(selected));
                        }

                        printed += selected.Count;
                        cursor = nextId;
                        if (!parse.GetValue(follow))
                        {
                            if (events.GetArrayLength() >= PageSize)
                            {
                                continue; // a full page: there may be more
                            }

                            break;
                        }

                        if (events.GetArrayLength() > 0)
                        {
                            continue;
                        }
                    }
                }

                try
                {
                    await Task.Delay(1000, ct);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            if (printed == 0 && !asJson && !parse.GetValue(follow))
            {
                var applied = new List<string>();
                foreach (var (name, value) in new[] { ("decision", parse.GetValue(decision)), ("client", parse.GetValue(client)), ("host", parse.GetValue(host)) })
                {
                    if (!string.IsNullOrEmpty(value))
                    {
                        applied.Add($"--{name} {EventText.Clean(value)}");
                    }
                }

                if (from is { } f)
                {
                    applied.Add($"--since {f.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}Z");
                }

                if (parse.GetValue(after) > 0)
                {
                    applied.Add($"--after {parse.GetValue(after).ToString(CultureInfo.InvariantCulture)}");
                }

                Console.WriteLine(applied.Count == 0
                    ? $"no events yet (admin API {endpoint.Display})"
                    : $"no events match {string.Join(" ", applied)} (admin API {endpoint.Display})");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary><c>proxyguard events verify</c>: checks the hash chains of a local store or of the central store.</summary>
    private static Command CreateVerify()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Check the local store in this data directory (default .proxyguard unless --events-store is given); with --events-store, also compare that replica's central events with it." };
        var store = new Option<string?>("--events-store") { Description = "Check every replica in the central store: postgres://USER@HOST[:PORT]/DB (default: PROXYGUARD_EVENTS_STORE when --data-dir is not given)." };
        var passwordFile = new Option<string?>("--events-store-password-file") { Description = "File holding the central store's password." };
        var publicKey = new Option<string?>("--public-key") { Description = "Also check the signed checkpoints against these Ed25519 public keys (a PEM file; several keys during a rotation)." }.NotEmpty();
        var replica = new Option<string?>("--replica-id") { Description = "With --events-store and --data-dir: the replica that data directory belongs to (default: its replica.id, else the replica its checkpoints name)." }.NotEmpty();
        var verify = new Command("verify", "Check the events' hash chains and name the first break (exit 1 on a break).") { dataDir, store, passwordFile, publicKey, replica };
        verify.SetAction(async (parse, ct) =>
        {
            var url = parse.GetValue(store);
            var dir = parse.GetValue(dataDir);
            if (url is null && dir is null)
            {
                url = Environment.GetEnvironmentVariable("PROXYGUARD_EVENTS_STORE") is { Length: > 0 } fromEnv ? fromEnv : null;
            }

            IReadOnlyList<ChainReport> reports;
            try
            {
                var keys = parse.GetValue(publicKey) is { } keyFile ? CheckpointKeys.Load(keyFile) : null;
                if (url is not null)
                {
                    var (connectionString, display) = ProxyGuard.Audit.Central.CentralConnection.Parse(
                        url, parse.GetValue(passwordFile) ?? Environment.GetEnvironmentVariable("PROXYGUARD_EVENTS_STORE_PASSWORD_FILE"),
                        Environment.GetEnvironmentVariable, "--events-store");
                    reports = await ChainVerifier.VerifyCentralAsync(connectionString, display, ct, keys, dir, parse.GetValue(replica));
                    if (reports.Count == 0)
                    {
                        Console.WriteLine($"no replica has shipped events to {display} yet");
                    }
                }
                else
                {
                    reports = [ChainVerifier.VerifyLocal(dir ?? ".proxyguard", keys)];
                }
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync("proxyguard: " + RunCommand.OneLine(ex.Message));
                return ExitCodes.Usage;
            }
            catch (EventStoreException ex)
            {
                await Console.Error.WriteLineAsync("proxyguard: " + RunCommand.OneLine(ex.Message));
                return ExitCodes.Failed;
            }

            foreach (var report in reports)
            {
                Console.WriteLine(report.Intact
                    ? $"ok: {report.Source}: {report.Checked} events, chain intact{CheckpointSummary(report)}"
                    : $"BROKEN: {report.Source}: at id {report.BreakId}: {report.Problem} ({report.Checked} events verified before it)");
            }

            return reports.All(r => r.Intact) ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return verify;
    }

    private static string CheckpointSummary(ChainReport report) =>
        !report.CheckpointsChecked ? string.Empty
        : report.NewestCheckpoint is { } newest
            ? string.Create(CultureInfo.InvariantCulture, $", {report.Checkpoints} signed checkpoints verified (newest: {newest.Number}, event {newest.EventId}, {newest.Time:yyyy-MM-dd HH:mm:ss}Z)")
            : ", no signed checkpoint yet";

    /// <summary><c>proxyguard events checkpoint-key</c>: prints (or writes) the public key of a data directory's checkpoint key.</summary>
    private static Command CreateCheckpointKey()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory holding checkpoint.key.", DefaultValueFactory = _ => ".proxyguard" }.NotEmpty();
        var key = new Option<string?>("--key") { Description = "The private key file instead of DATA_DIR/checkpoint.key." }.NotEmpty();
        var output = new Option<string?>("--out", "-o") { Description = "Write the public key (PEM) to this file instead of standard output." }.NotEmpty();
        var command = new Command("checkpoint-key", "Print the public key that verifies this replica's signed checkpoints (events verify --public-key).") { dataDir, key, output };
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetValue(key) ?? Path.Combine(parse.GetValue(dataDir)!, CheckpointSigner.DefaultFileName);
            string pem;
            try
            {
                using var signer = CheckpointSigner.Load(path, string.Empty, create: false);
                pem = signer.PublicKeyPem;
            }
            catch (EventStoreException ex)
            {
                await Console.Error.WriteLineAsync("proxyguard: " + RunCommand.OneLine(ex.Message) + " (the proxy creates it when run with --events-checkpoints)");
                return ExitCodes.Failed;
            }

            if (parse.GetValue(output) is { } file)
            {
                await File.WriteAllTextAsync(file, pem, ct);
                await Console.Error.WriteLineAsync($"wrote the checkpoint public key to {file}");
            }
            else
            {
                Console.Write(pem);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// The admin token and a sentence saying where it came from (or every place that was looked at), for messages.
    /// The token itself is never printed.
    /// </summary>
    internal static async Task<(string? Token, string Source)> FindTokenAsync(string? option, string dataDirectory, CancellationToken ct)
    {
        if (!string.IsNullOrEmpty(option))
        {
            return (option, "token from --token");
        }

        if (Environment.GetEnvironmentVariable("PROXYGUARD_ADMIN_TOKEN") is { Length: > 0 } fromEnv)
        {
            return (fromEnv, "token from PROXYGUARD_ADMIN_TOKEN");
        }

        var file = Path.GetFullPath(Path.Combine(dataDirectory, AdminToken.FileName));
        if (!File.Exists(file))
        {
            return (null, $"no token: --token not given, PROXYGUARD_ADMIN_TOKEN not set, and {file} does not exist (use the proxy's --data-dir)");
        }

        try
        {
            var text = (await File.ReadAllTextAsync(file, ct)).Trim();
            return text.Length == 0 ? (null, $"no token: {file} is empty") : (text, $"token from {file}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, $"no token: cannot read {file}: {RunCommand.OneLine(ex.Message)}");
        }
    }

    /// <summary><c>15m</c>, <c>2h</c>, <c>7d</c>, <c>90s</c> ago, or an absolute time (UTC unless it carries an offset).</summary>
    internal static bool TryParseSince(string text, DateTimeOffset now, out DateTimeOffset since)
    {
        since = default;
        var t = text.Trim();
        if (t.Length >= 2 && long.TryParse(t.AsSpan(0, t.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 100_000_000)
        {
            TimeSpan? ago = t[^1] switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => null,
            };
            if (ago is { } span)
            {
                since = now - span;
                return true;
            }
        }

        return t.Length >= 10 && char.IsAsciiDigit(t[0])
            && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out since);
    }

    /// <summary>Colour only for a terminal, and never when NO_COLOR is set or TERM is dumb.</summary>
    private static bool UseColour() =>
        !Console.IsOutputRedirected
        && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"))
        && Environment.GetEnvironmentVariable("TERM") is not (null or "" or "dumb");

    private static DateTimeOffset? EventTime(JsonElement e) =>
        e.TryGetProperty("time", out var v) && v.ValueKind == JsonValueKind.String && v.TryGetDateTimeOffset(out var t) ? t : null;

    private static string Filter(string name, string? value) => string.IsNullOrEmpty(value) ? string.Empty : $"&{name}={Uri.EscapeDataString(value)}";

    /// <summary>
    /// The terminal table: column widths follow the widest value seen so far (they never shrink while following),
    /// times are UTC to the second, and every field is cleaned of control characters and escape sequences. Widths are
    /// counted in terminal cells (a CJK character takes two, a combining mark none), and a value wider than
    /// <see cref="MaxAlignedWidth"/> is shortened in the middle with '…' (so every row lines up; --json has it whole).
    /// The last column is never shortened.
    /// </summary>
    internal sealed class EventTable(bool colour)
    {
        private static readonly string[] Headers = ["ID", "TIME (UTC)", "DECISION", "KIND", "CLIENT", "STATUS", "TARGET", "RULE", "REASON"];

        /// <summary>Right-aligned columns (numbers).</summary>
        private static readonly bool[] Right = [true, false, false, false, false, true, false, false, false];

        /// <summary>A very long target does not push every other row's rule and reason off screen.</summary>
        internal const int MaxAlignedWidth = 60;

        private readonly int[] _widths = Headers.Select(h => h.Length).ToArray();
        private bool _headerPrinted;

        public string Render(IReadOnlyList<JsonElement> events)
        {
            if (events.Count == 0)
            {
                return string.Empty;
            }

            var rows = events.Select(Row).ToList();
            foreach (var row in rows)
            {
                for (var i = 0; i < row.Length - 1; i++)
                {
                    row[i] = Shorten(row[i], MaxAlignedWidth);
                    _widths[i] = Math.Max(_widths[i], CellWidth(row[i]));
                }
            }

            var sb = new StringBuilder();
            if (!_headerPrinted)
            {
                Append(sb, Headers, header: true);
                _headerPrinted = true;
            }

            foreach (var row in rows)
            {
                Append(sb, row, header: false);
            }

            return sb.ToString();
        }

        /// <summary>How many terminal cells <paramref name="text"/> takes (East Asian wide and fullwidth: 2; combining and format characters: 0).</summary>
        internal static int CellWidth(string text)
        {
            var width = 0;
            foreach (var rune in text.EnumerateRunes())
            {
                width += CellWidth(rune);
            }

            return width;
        }

        private static int CellWidth(Rune rune)
        {
            var category = Rune.GetUnicodeCategory(rune);
            if (category is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format || rune.Value is >= 0x1160 and <= 0x11FF)
            {
                return 0;
            }

            return rune.Value switch
            {
                >= 0x1100 and <= 0x115F or >= 0x2E80 and <= 0x303E or >= 0x3041 and <= 0x33FF or >= 0x3400 and <= 0x4DBF
                    or >= 0x4E00 and <= 0x9FFF or >= 0xA000 and <= 0xA4CF or >= 0xAC00 and <= 0xD7A3 or >= 0xF900 and <= 0xFAFF
                    or >= 0xFE30 and <= 0xFE4F or >= 0xFF00 and <= 0xFF60 or >= 0xFFE0 and <= 0xFFE6 or >= 0x1F300 and <= 0x1F64F
                    or >= 0x1F900 and <= 0x1F9FF or >= 0x20000 and <= 0x3FFFD => 2,
                _ => 1,
            };
        }

        /// <summary><paramref name="text"/> if it fits in <paramref name="max"/> cells, else its start and end around '…'.</summary>
        internal static string Shorten(string text, int max)
        {
            if (CellWidth(text) <= max)
            {
                return text;
            }

            var runes = text.EnumerateRunes().ToList();
            var budget = max - 1; // the ellipsis
            var headBudget = (budget + 1) / 2;
            var head = new StringBuilder();
            var used = 0;
            var i = 0;
            for (; i < runes.Count && used + CellWidth(runes[i]) <= headBudget; i++)
            {
                head.Append(runes[i].ToString());
                used += CellWidth(runes[i]);
            }

            var tail = new List<Rune>();
            for (var j = runes.Count - 1; j >= i && used + CellWidth(runes[j]) <= budget; j--)
            {
                tail.Insert(0, runes[j]);
                used += CellWidth(runes[j]);
            }

            // A combining mark at the cut would attach to the ellipsis: drop it.
            while (tail.Count > 0 && CellWidth(tail[0]) == 0)
            {
                tail.RemoveAt(0);
            }

            return head.Append('…').Append(string.Concat(tail.Select(r => r.ToString()))).ToString();
        }

        private void Append(StringBuilder sb, string[] cells, bool header)
        {
            for (var i = 0; i < cells.Length; i++)
            {
                var last = i == cells.Length - 1;
                var text = cells[i];
                var pad = Math.Max(0, _widths[i] - CellWidth(text));
                if (Right[i])
                {
                    sb.Append(' ', pad);
                }

                sb.Append(!header && colour && i == 2 ? Colour(text) : text);
                if (!last)
                {
                    sb.Append(' ', Right[i] ? 0 : pad).Append("  ");
                }
            }

            sb.Append('\n');
        }

        private static string Colour(string decision) => decision switch
        {
            AuditDecisions.Allow => "\e[32m" + decision + "\e[0m",
            AuditDecisions.Deny => "\e[31m" + decision + "\e[0m",
            AuditDecisions.AuditDeny => "\e[33m" + decision + "\e[0m",
            _ => decision,
        };

        private static string[] Row(JsonElement e)
        {
            var time = EventTime(e) is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : Str(e, "time");
            var port = Str(e, "port");
            var target = $"{Str(e, "method")} {Str(e, "host")}{(port == "-" ? string.Empty : ":" + port)}{(Has(e, "path") ? Str(e, "path") : string.Empty)}";
            return
            [
                Str(e, "id"), time, Str(e, "decision"), Str(e, "kind"), Str(e, "client"), Str(e, "status"), target, Str(e, "rule"), Str(e, "reason"),
            ];
        }

        private static bool Has(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

        /// <summary>A field for the terminal table: control characters and escape sequences are shown escaped, never sent to the terminal.</summary>
        private static string Str(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? EventText.Clean(v.ToString())! : "-";
    }
}
