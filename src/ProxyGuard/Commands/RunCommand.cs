using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting.Systemd;
using ProxyGuard.Audit;
using ProxyGuard.Audit.Central;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.Engine.Hosting;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;

namespace ProxyGuard.Commands;

internal static class RunCommand
{
    public static Command Create()
    {
        var policy = new Option<string>("--policy") { Description = "Policy file.", DefaultValueFactory = _ => "policies/default.yaml" }.NotEmpty();
        var listen = new Option<string>("--listen") { Description = "Proxy listener: ADDR:PORT, http://ADDR:PORT or unix:/path.sock.", DefaultValueFactory = _ => "127.0.0.1:8080" };
        var admin = new Option<string>("--admin") { Description = "Admin API listener: ADDR:PORT, http://ADDR:PORT or unix:/path.sock.", DefaultValueFactory = _ => "127.0.0.1:9090" };
        var caDir = new Option<string>("--ca-dir") { Description = "CA directory (created on first run).", DefaultValueFactory = _ => "certs-dev" }.NotEmpty();
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory (events, tokens).", DefaultValueFactory = _ => ".proxyguard" }.NotEmpty();
        var resolve = new Option<string[]>("--resolve") { Description = "Pin HOST=IP (repeatable).", AllowMultipleArgumentsPerToken = false };
        var jsonLogs = new Option<bool>("--json-logs") { Description = "Structured JSON console logs (for container platforms)." };

        var retain = new Option<string>("--events-retain") { Description = "Delete audit events older than this (e.g. 720h; 0s keeps them forever).", DefaultValueFactory = _ => "720h" };
        var maxEvents = new Option<long>("--events-max-count") { Description = "Keep at most this many audit events (0: no limit).", DefaultValueFactory = _ => 5_000_000 }.WholeNumber("a number of events");
        var maxSize = new Option<string>("--events-max-size") { Description = "Keep the event database under this size (e.g. 2GiB; 0: no limit).", DefaultValueFactory = _ => "0" };
        var otlpEndpoint = new Option<string?>("--otlp-endpoint") { Description = "Export audit events (as logs) and metrics over OTLP to this collector base URL, e.g. http://collector:4318 (default: PROXYGUARD_OTLP_ENDPOINT; off when neither is set)." };
        var readable = new Option<string>("--readable-denials")
        {
            Description = "on: a CONNECT the policy refuses is answered inside TLS with the explanation (clients can read it); off (default): 403 before TLS.",
            DefaultValueFactory = _ => "off",
        };
        readable.AcceptOnlyFromAmong("on", "off");
        var eventsStore = new Option<string?>("--events-store") { Description = "Central event store shared by replicas: postgres://USER@HOST[:PORT]/DB (default: PROXYGUARD_EVENTS_STORE). The password: in the URL, PGPASSWORD, or --events-store-password-file." };
        var passwordFile = new Option<string?>("--events-store-password-file") { Description = "File holding the central store's password (default: PROXYGUARD_EVENTS_STORE_PASSWORD_FILE)." };
        var replicaId = new Option<string?>("--replica-id") { Description = "This replica's id in the central store (default: PROXYGUARD_REPLICA_ID, else DATA_DIR/replica.id, created on first start)." };
        var centralRetain = new Option<string>("--events-store-retain") { Description = "Delete events older than this from the central store (e.g. 2160h; 0s keeps them).", DefaultValueFactory = _ => "720h" };
        var outboxMax = new Option<long>("--events-outbox-max") { Description = "With a central store: most events waiting to ship before requests fail closed.", DefaultValueFactory = _ => 1_000_000 }.WholeNumber("a number of events");
        var budgetStore = new Option<string?>("--budget-store")
        {
            Description = "Share the policy's budgets with the other replicas through PostgreSQL (postgres://USER[:PASSWORD]@HOST:PORT/DB; default: PROXYGUARD_BUDGET_STORE).",
        };
        var checkpoints = new Option<bool>("--events-checkpoints") { Description = "Sign checkpoints of the event chain with an Ed25519 key (DATA_DIR/checkpoint.key, created on first start; default: PROXYGUARD_EVENTS_CHECKPOINTS=on)." };
        var checkpointKey = new Option<string?>("--events-checkpoint-key") { Description = "The checkpoint signing key (PEM, mode 0600) instead of DATA_DIR/checkpoint.key; implies --events-checkpoints." }.NotEmpty();
        var checkpointEvery = new Option<long>("--events-checkpoint-every") { Description = "A checkpoint after this many new events.", DefaultValueFactory = _ => 1000 }.WholeNumber("a number of events");
        var checkpointInterval = new Option<string>("--events-checkpoint-interval") { Description = "A checkpoint this often while events arrive (and one at shutdown).", DefaultValueFactory = _ => "60s" };
        var command = new Command("run", "Run the proxy.") { policy, listen, admin, caDir, dataDir, resolve, jsonLogs, retain, maxEvents, maxSize, otlpEndpoint, readable, eventsStore, passwordFile, replicaId, centralRetain, outboxMax, budgetStore, checkpoints, checkpointKey, checkpointEvery, checkpointInterval };
        command.SetAction(async (parse, ct) =>
        {
            Dictionary<string, IPAddress> pins;
            EventStoreOptions retention;
            string listenValue, adminValue;
            Uri? otlp = null;
            Func<string, CentralStoreOptions>? central;
            TimeSpan budgetSync;
            try
            {
                budgetSync = BudgetSyncInterval(Environment.GetEnvironmentVariable("PROXYGUARD_BUDGET_SYNC_MS"));
                if ((parse.GetValue(otlpEndpoint) ?? Environment.GetEnvironmentVariable("PROXYGUARD_OTLP_ENDPOINT")) is { Length: > 0 } otlpValue)
                {
                    otlp = Engine.Telemetry.OtlpExport.ParseEndpoint(otlpValue, "--otlp-endpoint");
                }

                pins = ParsePins(parse.GetValue(resolve) ?? []);
                listenValue = ListenValue(parse.GetValue(listen)!, "--listen");
                adminValue = ListenValue(parse.GetValue(admin)!, "--admin");
                retention = ParseRetention(parse.GetValue(retain)!, parse.GetValue(maxEvents), parse.GetValue(maxSize)!);
                central = ParseCentral(
                    parse.GetValue(eventsStore) ?? Environment.GetEnvironmentVariable("PROXYGUARD_EVENTS_STORE"),
                    parse.GetValue(passwordFile) ?? Environment.GetEnvironmentVariable("PROXYGUARD_EVENTS_STORE_PASSWORD_FILE"),
                    parse.GetValue(replicaId) ?? Environment.GetEnvironmentVariable("PROXYGUARD_REPLICA_ID"),
                    parse.GetValue(centralRetain)!);
                if (central is not null)
                {
                    if (parse.GetValue(outboxMax) < 1)
                    {
                        throw new ArgumentException("--events-outbox-max: must be at least 1");
                    }

                    retention = new EventStoreOptions
                    {
                        RetainFor = retention.RetainFor,
                        MaxEvents = retention.MaxEvents,
                        MaxBytes = retention.MaxBytes,
                        MaxUnshipped = parse.GetValue(outboxMax),
                    };
                }

                var checkpointOptions = ParseCheckpoints(
                    parse.GetValue(checkpoints) || string.Equals(Environment.GetEnvironmentVariable("PROXYGUARD_EVENTS_CHECKPOINTS"), "on", StringComparison.OrdinalIgnoreCase),
                    parse.GetValue(checkpointKey), parse.GetValue(checkpointEvery), parse.GetValue(checkpointInterval)!,
                    parse.GetValue(replicaId) ?? Environment.GetEnvironmentVariable("PROXYGUARD_REPLICA_ID"));
                if (checkpointOptions is not null)
                {
                    retention = new EventStoreOptions
                    {
                        RetainFor = retention.RetainFor,
                        MaxEvents = retention.MaxEvents,
                        MaxBytes = retention.MaxBytes,
                        MaxUnshipped = retention.MaxUnshipped,
                        Checkpoints = checkpointOptions,
                    };
                }
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync("proxyguard: " + ex.Message);
                return ExitCodes.Usage;
            }

            var options = new ProxyServerOptions
            {
                PolicyPath = parse.GetValue(policy)!,
                Listen = listenValue,
                Admin = adminValue,
                CaDirectory = parse.GetValue(caDir)!,
                DataDirectory = parse.GetValue(dataDir)!,
                Resolve = pins,
                JsonLogs = parse.GetValue(jsonLogs),
                Events = retention,
                OtlpEndpoint = otlp,
                ReadableDenials = parse.GetValue(readable) == "on",
                Central = central,
                BudgetStore = parse.GetValue(budgetStore) is { Length: > 0 } store ? store : Environment.GetEnvironmentVariable("PROXYGUARD_BUDGET_STORE") is { Length: > 0 } fromEnv ? fromEnv : null,
                BudgetSyncInterval = budgetSync,
            };
            return await RunAsync(options, ct);
        });
        return command;
    }

    /// <summary>
    /// A listener as <c>ADDR:PORT</c> or <c>unix:PATH</c>; the URL form the banner prints (<c>http://ADDR:PORT</c>)
    /// is accepted too. Throws <see cref="ArgumentException"/> naming <paramref name="option"/>.
    /// </summary>
    internal static string ListenValue(string value, string option)
    {
        var text = value.Trim();
        if (text.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"{option}: the listener speaks plain HTTP to its clients (TLS is inside CONNECT): use ADDR:PORT or http://ADDR:PORT, got '{value}'");
        }

        if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            text = text["http://".Length..].TrimEnd('/');
            if (text.Contains('/', StringComparison.Ordinal))
            {
                throw new ArgumentException($"{option}: a listener has no path: use ADDR:PORT or http://ADDR:PORT, got '{value}'");
            }
        }

        ListenAddress.Parse(text, option);
        return text;
    }

    internal static EventStoreOptions ParseRetention(string retain, long maxCount, string maxSize)
    {
        if (!PolicyValues.TryParseDuration(retain, out var age))
        {
            throw new ArgumentException($"--events-retain: expected a duration such as 720h or 30m, got '{retain}'");
        }

        if (maxCount < 0)
        {
            throw new ArgumentException("--events-max-count: must not be negative");
        }

        if (!PolicyValues.TryParseSize(maxSize, out var bytes))
        {
            throw new ArgumentException($"--events-max-size: expected a size such as 512MiB, got '{maxSize}'");
        }

        return new EventStoreOptions
        {
            RetainFor = age == TimeSpan.Zero ? null : age,
            MaxEvents = maxCount == 0 ? null : maxCount,
            MaxBytes = bytes == 0 ? null : bytes,
        };
    }

    /// <summary>Signed checkpoints: null when off (neither the switch nor a key file was given).</summary>
    internal static CheckpointOptions? ParseCheckpoints(bool on, string? keyFile, long every, string interval, string? replicaId)
    {
        if (!on && keyFile is null)
        {
            return null;
        }

        if (every is < 1 or > int.MaxValue)
        {
            throw new ArgumentException("--events-checkpoint-every: must be at least 1");
        }

        if (!PolicyValues.TryParseDuration(interval, out var period) || period <= TimeSpan.Zero)
        {
            throw new ArgumentException($"--events-checkpoint-interval: expected a positive duration such as 60s or 5m, got '{interval}'");
        }

        return new CheckpointOptions
        {
            KeyFile = keyFile is null ? null : Path.GetFullPath(keyFile),
            ReplicaId = string.IsNullOrEmpty(replicaId) ? null : replicaId,
            EveryEvents = (int)every,
            Interval = period,
        };
    }

    /// <summary>The central store's settings from the URL (null when none is configured); the replica id is resolved at start, in the data directory.</summary>
    internal static Func<string, CentralStoreOptions>? ParseCentral(string? url, string? passwordFile, string? replicaId, string retain)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            return null;
        }

        if (!PolicyValues.TryParseDuration(retain, out var age))
        {
            throw new ArgumentException($"--events-store-retain: expected a duration such as 720h or 30m, got '{retain}'");
        }

        var (connectionString, display) = CentralConnection.Parse(url.Trim(), passwordFile, Environment.GetEnvironmentVariable, "--events-store");
        return dataDirectory => new CentralStoreOptions
        {
            ConnectionString = connectionString,
            Display = display,
            ReplicaId = CentralConnection.ReplicaId(dataDirectory, replicaId),
            Incarnation = CentralConnection.Incarnation(dataDirectory),
            RetainFor = age == TimeSpan.Zero ? null : age,
        };
    }

    /// <summary><c>PROXYGUARD_BUDGET_SYNC_MS</c>: 10..60000 ms between budget store syncs (default 250).</summary>
    internal static TimeSpan BudgetSyncInterval(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return TimeSpan.FromMilliseconds(250);
        }

        if (!int.TryParse(value.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms) || ms is < 10 or > 60_000)
        {
            throw new ArgumentException($"PROXYGUARD_BUDGET_SYNC_MS must be a whole number of milliseconds from 10 to 60000, not '{value}'");
        }

        return TimeSpan.FromMilliseconds(ms);
    }

    internal static Dictionary<string, IPAddress> ParsePins(IEnumerable<string> values)
    {
        var pins = new Dictionary<string, IPAddress>(StringComparer.OrdinalIgnoreCase);
        foreach (var value in values)
        {
            var eq = value.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !IPAddress.TryParse(value[(eq + 1)..].Trim('[', ']'), out var address))
            {
                throw new ArgumentException($"--resolve: expected HOST=IP, got '{value}'");
            }

            pins[value[..eq].ToLowerInvariant().TrimEnd('.')] = address;
        }

        return pins;
    }

    private static async Task<int> RunAsync(ProxyServerOptions options, CancellationToken ct)
    {
        if (!File.Exists(options.PolicyPath))
        {
            await Console.Error.WriteLineAsync($"proxyguard: cannot start: the policy file {Path.GetFullPath(options.PolicyPath)} does not exist (use --policy FILE)");
            return ExitCodes.Failed;
        }

        // The validation 'policy check' performs (one routine for both): every problem as FILE:LINE:COL before anything starts.
        var validation = PolicyLoader.Validate(options.PolicyPath, PolicyCommands.LoadOptions(null));
        if (!validation.Success)
        {
            foreach (var diagnostic in validation.Diagnostics)
            {
                await Console.Error.WriteLineAsync(diagnostic.ToString());
            }

            await Console.Error.WriteLineAsync($"proxyguard: the policy {options.PolicyPath} is invalid; not starting");
            return ExitCodes.Failed;
        }

        if (CheckKeyMaterial(options) is { } refusal)
        {
            await Console.Error.WriteLineAsync("proxyguard: cannot start: " + refusal);
            return ExitCodes.Failed;
        }

        ProxyServer server;
        try
        {
            FilePermissions.CreatePrivateDirectory(options.DataDirectory);
            server = await ProxyServer.CreateAsync(options with { ValidatedPolicy = validation.Policy }, ct);
        }
        catch (PolicyLoadException ex)
        {
            foreach (var error in ex.Errors)
            {
                await Console.Error.WriteLineAsync(error);
            }

            await Console.Error.WriteLineAsync($"proxyguard: the policy {options.PolicyPath} is invalid; not starting");
            return ExitCodes.Failed;
        }
        catch (Exception ex) when (ex is CertificateAuthorityException or EventStoreException or ProxyGuard.Engine.Budgets.BudgetStoreException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            await Console.Error.WriteLineAsync("proxyguard: cannot start: " + OneLine(ex.Message));
            return ExitCodes.Failed;
        }

        await using (server)
        {
            try
            {
                await server.StartAsync(ct);
            }
            catch (IOException ex)
            {
                await Console.Error.WriteLineAsync("proxyguard: cannot start: " + BindFailure(ex, options));
                return ExitCodes.Failed;
            }

            using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                // Reload instead of terminating; the outcome (and any FILE:LINE:COL errors) is logged.
                context.Cancel = true;
                server.Services.Runtime.ReloadInBackground("SIGHUP");
            });

            Banner.Print(server, options);

            // systemd Type=notify: ready once the listeners are bound (a no-op outside systemd).
            var systemd = new SystemdNotifier();
            if (systemd.IsEnabled)
            {
                systemd.Notify(ServiceState.Ready);
            }

            await server.WaitForShutdownAsync(ct);
            if (systemd.IsEnabled)
            {
                systemd.Notify(ServiceState.Stopping);
            }

            await server.StopAsync(CancellationToken.None);
        }

        return ExitCodes.Ok;
    }

    /// <summary>
    /// Refuses to start when the data directory, the CA directory, or a key or token file in them is
    /// writable by group or others (a planted admin token or CA key would be accepted otherwise).
    /// </summary>
    internal static string? CheckKeyMaterial(ProxyServerOptions options) =>
        FilePermissions.CheckPrivateDirectory(options.DataDirectory, "data directory")
        ?? FilePermissions.CheckPrivateFile(Path.Combine(options.DataDirectory, AdminToken.FileName), "admin token file")
        ?? FilePermissions.CheckPrivateFile(Path.Combine(options.DataDirectory, "installation.key"), "installation key")
        ?? FilePermissions.CheckPrivateDirectory(options.CaDirectory, "CA directory")
        ?? FilePermissions.CheckPrivateFile(Path.Combine(options.CaDirectory, CertificateAuthority.KeyFileName), "CA key")
        ?? FilePermissions.CheckPrivateFile(Path.Combine(options.CaDirectory, CertificateAuthority.LeafKeyFileName), "leaf key");

    /// <summary>
    /// A listener that cannot be bound, said in the user's terms: which option, and the address as the banner
    /// would print it (<c>http://</c>: both listeners speak plain HTTP to their clients; Kestrel's own message
    /// says <c>https://</c> for the proxy listener because of its TLS-detecting middleware).
    /// </summary>
    internal static string BindFailure(IOException ex, ProxyServerOptions options)
    {
        var match = System.Text.RegularExpressions.Regex.Match(ex.Message, @"^Failed to bind to address (?:https?://)?(?<address>\S+?): (?<why>.*)$");
        if (!match.Success)
        {
            return OneLine(ex.Message);
        }

        var address = match.Groups["address"].Value;
        var option = Describes(options.Admin, address) ? $" (--admin {options.Admin})"
            : Describes(options.Listen, address) ? $" (--listen {options.Listen})"
            : string.Empty;
        var shown = address.StartsWith("unix:", StringComparison.Ordinal) || address.StartsWith('/') ? address : "http://" + address;
        return $"cannot listen on {shown}{option}: {OneLine(match.Groups["why"].Value).TrimEnd('.')}";
    }

    private static bool Describes(string option, string address)
    {
        try
        {
            var parsed = ListenAddress.Parse(option, "option");
            return parsed.UnixPath is { } path
                ? address.Contains(path, StringComparison.Ordinal)
                : address == parsed.EndPoint!.ToString();
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    internal static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
