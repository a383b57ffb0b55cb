using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using ProxyGuard.Engine.Hosting;

namespace ProxyGuard.Commands;

/// <summary><c>proxyguard events</c>: pulls audit events from a running proxy's admin API.</summary>
internal static class EventsCommand
{
    public static Command Create()
    {
        var admin = new Option<string>("--admin") { Description = "Admin API URL.", DefaultValueFactory = _ => "http://127.0.0.1:9090" };
        var after = new Option<long>("--after") { Description = "Only events with a larger id." };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep pulling new events." };
        var decision = new Option<string?>("--decision") { Description = "allow | deny | audit-deny" };
        var client = new Option<string?>("--client") { Description = "Client id." };
        var host = new Option<string?>("--host") { Description = "Host (normalised)." };
        var json = new Option<bool>("--json") { Description = "One JSON object per line (for SIEM shipping)." };
        var token = new Option<string?>("--token") { Description = "Admin token (default: PROXYGUARD_ADMIN_TOKEN, then DATA_DIR/admin.token)." };
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory holding admin.token.", DefaultValueFactory = _ => ".proxyguard" };
        var command = new Command("events", "Pull audit events from a running proxy.") { admin, after, follow, decision, client, host, json, token, dataDir };
        command.SetAction(async (parse, ct) =>
        {
            var adminToken = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("PROXYGUARD_ADMIN_TOKEN");
            var tokenFile = Path.Combine(parse.GetValue(dataDir)!, AdminToken.FileName);
            if (string.IsNullOrEmpty(adminToken) && File.Exists(tokenFile))
            {
                adminToken = (await File.ReadAllTextAsync(tokenFile, ct)).Trim();
            }

            // The admin API is never reached through a proxy: a shell that ran `eval "$(proxyguard env)"`
            // has HTTP_PROXY set, and the proxy refuses to reach itself.
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(parse.GetValue(admin)!.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
            if (!string.IsNullOrEmpty(adminToken))
            {
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
            }

            var cursor = parse.GetValue(after);
            var asJson = parse.GetValue(json);
            var header = false;
            while (!ct.IsCancellationRequested)
            {
                var query = $"api/events?after={cursor.ToString(CultureInfo.InvariantCulture)}&limit=500"
                    + Filter("decision", parse.GetValue(decision)) + Filter("client", parse.GetValue(client)) + Filter("host", parse.GetValue(host));
                HttpResponseMessage response;
                try
                {
                    response = await http.GetAsync(query, ct);
                }
                catch (HttpRequestException ex)
                {
                    await Console.Error.WriteLineAsync($"proxyguard: cannot reach the admin API: {ex.Message}");
                    return ExitCodes.Failed;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break; // SIGINT/SIGTERM while following: a clean stop
                }
                catch (TaskCanceledException)
                {
                    await Console.Error.WriteLineAsync("proxyguard: the admin API did not answer within 30 s");
                    return ExitCodes.Failed;
                }

                if (!response.IsSuccessStatusCode)
                {
                    await Console.Error.WriteLineAsync($"proxyguard: the admin API answered {(int)response.StatusCode}" +
                        (response.StatusCode == System.Net.HttpStatusCode.Unauthorized ? " (missing or wrong admin token)" : string.Empty));
                    return ExitCodes.Failed;
                }

                JsonDocument doc;
                try
                {
                    doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                }
                catch (JsonException)
                {
                    await Console.Error.WriteLineAsync("proxyguard: the admin API answered something that is not an events page (is --admin the admin listener?)");
                    return ExitCodes.Failed;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }

                using var page = doc;
                var events = doc.RootElement.GetProperty("events");
                foreach (var e in events.EnumerateArray())
                {
                    if (asJson)
                    {
                        Console.WriteLine(e.GetRawText());
                        continue;
                    }

                    if (!header)
                    {
                        Console.WriteLine($"{"ID",8}  {"TIME",-24}  {"DECISION",-10}  {"KIND",-7}  {"CLIENT",-10}  {"STATUS",6}  TARGET  RULE  REASON");
                        header = true;
                    }

                    Console.WriteLine(
                        $"{e.GetProperty("id").GetInt64(),8}  {Str(e, "time"),-24}  {Str(e, "decision"),-10}  {Str(e, "kind"),-7}  {Str(e, "client"),-10}  {Str(e, "status"),6}  " +
                        $"{Str(e, "method")} {Str(e, "host")}:{Str(e, "port")}{Str(e, "path")}  {Str(e, "rule")}  {Str(e, "reason")}");
                }

                cursor = doc.RootElement.GetProperty("next").GetInt64();
                if (!parse.GetValue(follow))
                {
                    break;
                }

                if (events.GetArrayLength() == 0)
                {
                    try
                    {
                        await Task.Delay(1000, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Filter(string name, string? value) => string.IsNullOrEmpty(value) ? string.Empty : $"&{name}={Uri.EscapeDataString(value)}";

    /// <summary>A field for the terminal table: control characters and escape sequences are shown escaped, never sent to the terminal.</summary>
    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? Audit.EventText.Clean(v.ToString())! : "-";
}
