using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ProxyGuard.Policy.Grants;

namespace ProxyGuard.Commands;

/// <summary>
/// <c>proxyguard grant</c>: time-boxed access on top of the policy, through a running proxy's admin API (so only a
/// holder of the admin token can grant; the sandbox cannot reach the admin listener through the proxy).
/// </summary>
internal static class GrantCommand
{
    public static Command Create()
    {
        var client = new Option<string?>("--client") { Description = "Client id the grant is for ('*': any client, e.g. when the policy has no clients)." };
        var host = new Option<string?>("--host") { Description = "Host name, IP literal or *.domain, optionally :PORT (default: 443 for HTTPS, 80 for HTTP)." };
        var methods = new Option<string[]>("--methods") { Description = "Only these methods (GET,HEAD or repeated); default: any.", AllowMultipleArgumentsPerToken = true };
        var paths = new Option<string[]>("--paths") { Description = "Only these path globs (/v1/**); default: any.", AllowMultipleArgumentsPerToken = true };
        var duration = new Option<string?>("--for") { Description = "How long: 90s, 30m, 2h, 1d (at most 7d)." };
        var reason = new Option<string?>("--reason") { Description = "Why the access is needed (recorded in the audit event)." };
        var command = new Command("grant", "Allow a client a host for a while, on top of the policy (needs the admin token); 'grant list', 'grant revoke ID'.")
        {
            client, host, methods, paths, duration, reason,
        };
        var (admin, token, dataDir) = AddAdminOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            var missing = new[] { ("--client", parse.GetValue(client)), ("--host", parse.GetValue(host)), ("--for", parse.GetValue(duration)), ("--reason", parse.GetValue(reason)) }
                .Where(o => string.IsNullOrWhiteSpace(o.Item2)).Select(o => o.Item1).ToList();
            if (missing.Count > 0)
            {
                await Console.Error.WriteLineAsync($"proxyguard: grant needs {string.Join(", ", missing)} (e.g. proxyguard grant --client agent --host api.example.com --for 30m --reason \"...\")");
                return ExitCodes.Usage;
            }

            if (!Grant.TryParseDuration(parse.GetValue(duration), out _))
            {
                await Console.Error.WriteLineAsync($"proxyguard: --for: expected a duration such as 90s, 30m, 2h or 1d, got '{parse.GetValue(duration)}'");
                return ExitCodes.Usage;
            }

            var body = JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["client"] = parse.GetValue(client),
                ["host"] = parse.GetValue(host),
                ["methods"] = parse.GetValue(methods) ?? [],
                ["paths"] = parse.GetValue(paths) ?? [],
                ["for"] = parse.GetValue(duration),
                ["reason"] = parse.GetValue(reason),
                ["via"] = "cli",
            });
            return await CallAsync(parse, admin, token, dataDir, HttpMethod.Post, "api/grants", body, PrintGrant, ct);
        });

        var list = new Command("list", "List the active grants.");
        var (listAdmin, listToken, listDataDir) = AddAdminOptions(list);
        var json = new Option<bool>("--json") { Description = "The API's JSON." };
        list.Options.Add(json);
        list.SetAction(async (parse, ct) => await CallAsync(parse, listAdmin, listToken, listDataDir, HttpMethod.Get, "api/grants", null,
            doc => PrintList(doc, parse.GetValue(json)), ct));

        var revoke = new Command("revoke", "End a grant now.");
        var id = new Argument<string>("ID") { Description = "The grant id (from 'grant list')." };
        id.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && string.IsNullOrWhiteSpace(result.Tokens[^1].Value))
            {
                result.AddError("grant revoke: ID must not be empty (see 'proxyguard grant list')");
            }
        });
        revoke.Arguments.Add(id);
        var (revokeAdmin, revokeToken, revokeDataDir) = AddAdminOptions(revoke);
        revoke.SetAction(async (parse, ct) => await CallAsync(parse, revokeAdmin, revokeToken, revokeDataDir, HttpMethod.Delete,
            "api/grants/" + Uri.EscapeDataString(parse.GetValue(id)!) + "?via=cli", null,
            doc => Console.Out.WriteLine($"revoked grant {doc.RootElement.GetProperty("id").GetString()}"), ct));

        command.Subcommands.Add(list);
        command.Subcommands.Add(revoke);
        return command;
    }

    private static (Option<string> Admin, Option<string?> Token, Option<string> DataDir) AddAdminOptions(Command command)
    {
        var admin = new Option<string>("--admin") { Description = "Admin API: ADDR:PORT, http://ADDR:PORT or unix:/path.sock.", DefaultValueFactory = _ => "127.0.0.1:9090" };
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
        command.Options.Add(admin);
        command.Options.Add(token);
        command.Options.Add(dataDir);
        return (admin, token, dataDir);
    }

    private static async Task<int> CallAsync(
        ParseResult parse, Option<string> admin, Option<string?> token, Option<string> dataDir, HttpMethod method, string path, string? body,
        Action<JsonDocument> print, CancellationToken ct)
    {
        var endpoint = AdminEndpoint.Parse(parse.GetValue(admin)!, "--admin");
        var (adminToken, tokenSource) = await EventsCommand.FindTokenAsync(parse.GetValue(token), parse.GetValue(dataDir)!, ct);
        using var http = endpoint.CreateClient(TimeSpan.FromSeconds(30));
        if (adminToken is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        }

        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, ct);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"proxyguard: cannot reach the admin API at {endpoint.Display} (--admin): {RunCommand.OneLine(ex.Message)}");
            return ExitCodes.Failed;
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            JsonDocument? doc = null;
            try
            {
                doc = JsonDocument.Parse(text);
            }
            catch (JsonException)
            {
            }

            using (doc)
            {
                if (!response.IsSuccessStatusCode || doc is null)
                {
                    var error = doc is not null && doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e)
                        ? e.GetString()
                        : $"answered {(int)response.StatusCode}";
                    var hint = response.StatusCode == System.Net.HttpStatusCode.Unauthorized ? $" ({tokenSource})" : string.Empty;
                    await Console.Error.WriteLineAsync($"proxyguard: {endpoint.Display}: {RunCommand.OneLine(error ?? string.Empty)}{hint}");
                    return ExitCodes.Failed;
                }

                print(doc);
                return ExitCodes.Ok;
            }
        }
    }

    private static void PrintGrant(JsonDocument doc)
    {
        var g = doc.RootElement;
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"granted {S(g, "id")}: client {S(g, "client")} may reach {S(g, "host")}{Scope(g)} until {Time(g, "until")} (rule {S(g, "rule")}); revoke with: proxyguard grant revoke {S(g, "id")}"));
    }

    private static void PrintList(JsonDocument doc, bool json)
    {
        if (json)
        {
            Console.Out.WriteLine(doc.RootElement.GetRawText());
            return;
        }

        var grants = doc.RootElement.GetProperty("grants").EnumerateArray().ToList();
        if (grants.Count == 0)
        {
            Console.Out.WriteLine("no active grants");
            return;
        }

        string[] headers = ["ID", "CLIENT", "HOST", "METHODS", "PATHS", "UNTIL (UTC)", "BY", "REASON"];
        var rows = grants.Select(g => new[]
        {
            S(g, "id"), S(g, "client"), S(g, "host"), Join(g, "methods", "any"), Join(g, "paths", "any"), Time(g, "until"), S(g, "by"), S(g, "reason"),
        }).ToList();
        var widths = headers.Select((h, i) => Math.Min(48, rows.Select(r => r[i].Length).Append(h.Length).Max())).ToArray();
        Console.Out.WriteLine(Line(headers, widths));
        foreach (var row in rows)
        {
            Console.Out.WriteLine(Line(row, widths));
        }
    }

    private static string Line(string[] cells, int[] widths) =>
        string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : (c.Length > widths[i] ? c[..(widths[i] - 1)] + "…" : c.PadRight(widths[i])))).TrimEnd();

    private static string Scope(JsonElement g)
    {
        var methods = Join(g, "methods", string.Empty);
        var paths = Join(g, "paths", string.Empty);
        return (methods.Length > 0 ? " for " + methods : string.Empty) + (paths.Length > 0 ? " on " + paths : string.Empty);
    }

    private static string S(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? Printable(v.GetString()!) : string.Empty;

    private static string Join(JsonElement e, string name, string empty) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0
            ? string.Join(',', v.EnumerateArray().Select(x => Printable(x.GetString() ?? string.Empty)))
            : empty;

    private static string Time(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.TryGetDateTimeOffset(out var t)
            ? t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)
            : string.Empty;

    private static string Printable(string text) => new([.. text.Select(c => char.IsControl(c) ? '?' : c)]);
}
