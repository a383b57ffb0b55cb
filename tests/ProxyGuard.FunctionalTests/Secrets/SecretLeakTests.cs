using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary><see cref="SecretsFixture"/> plus a Vault secret, a secret Vault does not have, and a rule toward a closed port.</summary>
public sealed class LeakFixture : SecretsFixture
{
    public FakeVaultServer Vault { get; } = new();

    public string VaultToken { get; } = "s." + SecretForms.NewValue("vaulttoken");

    public string VaultValue { get; } = SecretForms.NewValue("vault", withSlash: true);

    public int ClosedPort { get; } = FindClosedPort();

    public IEnumerable<(string Name, string Value)> AllRealValues => RealValues.Concat([("vault", VaultValue), ("vault-token", VaultToken)]);

    protected override string Rules => base.Rules.Replace("secrets:\n", $"""
          - name: closed
            hosts: [localhost]
            ports: [{ClosedPort}]
            action: allow
        secrets:
          - name: vault
            value: vault:secret/data/ci/leak#token
            sandbox_env: VAULT_DEMO_TOKEN
            hosts: [localhost]
            in: [headers, query, body]
          - name: gone
            value: vault:secret/data/ci/gone#token
            sandbox_env: GONE_TOKEN
            hosts: [localhost]

        """, StringComparison.Ordinal);

    protected override IDictionary<string, string>? ProxyEnvironment => new Dictionary<string, string>(base.ProxyEnvironment!)
    {
        ["VAULT_ADDR"] = Vault.Address.ToString().TrimEnd('/'),
        ["VAULT_TOKEN"] = VaultToken,
        ["PROXYGUARD_LOG_LEVEL"] = "Debug",
    };

    public override async Task InitializeAsync()
    {
        Vault.RequiredToken = VaultToken;
        Vault.Secrets["/v1/secret/data/ci/leak"] = $"{{\"token\":\"{VaultValue}\"}}";
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Vault.DisposeAsync();
    }

    private static int FindClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>After a full scenario, no real value (raw or encoded) is in any log line, event, metric or file the proxy wrote.</summary>
[Collection("proxy")]
public sealed class SecretLeakTests : IClassFixture<LeakFixture>
{
    private readonly LeakFixture _f;

    public SecretLeakTests(LeakFixture fixture)
    {
        _f = fixture;
    }

    [Fact]
    public async Task Full_scenario_leaves_no_real_value_in_logs_events_metrics_or_files()
    {
        Assert.Contains("\"token\":\"" + _f.VaultValue, _f.Vault.Secrets.Values.Single(), StringComparison.Ordinal);
        using var client = _f.Client();
        var api = _f.ApiPlaceholder;
        var vault = _f.Env["VAULT_DEMO_TOKEN"];
        var expected = new List<(string What, HttpStatusCode Status, string? Reason)>();

        async Task Send(string what, HttpStatusCode status, string? reason, HttpRequestMessage request)
        {
            using var response = await client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"{what}: {(int)response.StatusCode} {body}");
            if (reason is not null)
            {
                Assert.Equal(reason, SecretsFixture.Reason(response));
            }

            Assert.Empty(SecretForms.FoundIn(body + response.Headers + response.Content.Headers, _f.AllRealValues));
            expected.Add((what, status, reason));
        }

        HttpRequestMessage Get(string url, params (string Name, string Value)[] headers)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, url);
            foreach (var (name, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            return request;
        }

        // Substitutions (with the origin echoing everything back).
        await Send("bearer+query+echo", HttpStatusCode.OK, null, Get(_f.HttpsUrl($"/echo/s1?key={api}&v={vault}"),
            ("Authorization", "Bearer " + api), ("X-Echo-Header", vault), ("x-api-key", _f.FormPlaceholder)));
        await Send("basic", HttpStatusCode.OK, null, Get(_f.HttpsUrl("/echo/s2"),
            ("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + _f.GitPlaceholderFromEnv)))));
        await Send("body", HttpStatusCode.OK, null, new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/s3"))
        {
            Content = new StringContent($"{{\"a\":\"{_f.FormPlaceholder}\",\"b\":\"{vault}\"}}", Encoding.UTF8, "application/json"),
        });
        Assert.Contains(_f.Origin.ReceivedHeaders, h => h.TryGetValue("Authorization", out var v) && v == "Bearer " + _f.ApiValue);
        Assert.Contains(_f.Origin.ReceivedHeaders, h => h.TryGetValue("X-Echo-Header", out var v) && v == _f.VaultValue);

        // Misuse and real values from the sandbox.
        await Send("misuse-host", HttpStatusCode.Forbidden, "secret-misuse", Get(_f.HttpsUrl("/echo/m1", "127.0.0.1"), ("Authorization", "Bearer " + api)));
        await Send("misuse-body", HttpStatusCode.Forbidden, "secret-misuse", new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/m2"))
        {
            Content = new StringContent("prompt with " + api),
        });
        await Send("real-raw", HttpStatusCode.Forbidden, "secret-real-value", Get(_f.HttpsUrl("/echo/r1"), ("Authorization", "Bearer " + _f.ApiValue)));
        await Send("real-basic", HttpStatusCode.Forbidden, "secret-real-value", Get(_f.HttpsUrl("/echo/r2", "origin.test"),
            ("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:" + _f.VaultValue)))));
        await Send("real-query", HttpStatusCode.Forbidden, "secret-real-value",
            Get(_f.HttpsUrl($"/echo/r3?x={Uri.EscapeDataString(_f.ApiValue)}&y={Uri.EscapeDataString(_f.FormValue)}")));

        // Failing requests: an unreachable upstream after substitution (logged at Debug), a secret Vault does not have.
        await Send("closed-port", HttpStatusCode.BadGateway, null, Get($"https://localhost:{_f.ClosedPort}/fail?key={api}",
            ("Authorization", "Bearer " + vault)));
        await Send("plain-closed-port", HttpStatusCode.Forbidden, "secret-plain-http", Get($"http://localhost:{_f.ClosedPort}/fail?key={vault}",
            ("Authorization", "Bearer " + api)));
        await Send("unavailable", HttpStatusCode.ServiceUnavailable, "secret-unavailable", Get(_f.HttpsUrl("/echo/u1"), ("Authorization", "Bearer " + _f.Env["GONE_TOKEN"])));

        // A reload logs again (and re-resolves every secret).
        using (var admin = _f.Proxy.AdminClient())
        {
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.True(reload.IsSuccessStatusCode, await reload.Content.ReadAsStringAsync());
        }

        // Every request was recorded before we look.
        var events = await PollAsync(async () =>
        {
            var all = await _f.Proxy.EventsAsync();
            return all.Count(e => e.GetProperty("kind").GetString() == "request") >= expected.Count ? all : null;
        });
        Assert.Contains(events, e => e.GetProperty("secretsInjected").EnumerateArray().Any(n => n.GetString() == "vault"));
        Assert.Contains(events, e => e.GetProperty("reason").GetString() == "secret-misuse");

        using var plain = new HttpClient();
        var metrics = await plain.GetStringAsync(_f.Proxy.AdminUrl + "/metrics");
        Assert.Contains("proxyguard", metrics, StringComparison.Ordinal);

        // Debug logging was on and covered the failing upstream.
        Assert.Contains("forwarding to localhost:" + _f.ClosedPort, _f.Proxy.Output, StringComparison.Ordinal);

        var leaks = new List<string>();
        leaks.AddRange(SecretForms.FoundIn(_f.Proxy.Output, _f.AllRealValues).Select(l => "log " + l));
        leaks.AddRange(events.SelectMany(e => SecretForms.FoundIn(e.GetRawText(), _f.AllRealValues)).Select(l => "event " + l));
        leaks.AddRange(SecretForms.FoundIn(metrics, _f.AllRealValues).Select(l => "metrics " + l));
        leaks.AddRange(ScanFiles());
        Assert.True(leaks.Count == 0, "real values found: " + string.Join(", ", leaks.Distinct()));

        // And once the proxy has shut down (database checkpointed, logs flushed).
        _f.Proxy.Signal(15);
        try
        {
            await _f.Proxy.WaitForExitAsync(TimeSpan.FromSeconds(30));
        }
        catch (OperationCanceledException)
        {
        }

        leaks.AddRange(SecretForms.FoundIn(_f.Proxy.Output, _f.AllRealValues).Select(l => "log " + l));
        leaks.AddRange(ScanFiles());
        Assert.True(leaks.Count == 0, "real values found after shutdown: " + string.Join(", ", leaks.Distinct()));
    }

    private List<string> ScanFiles()
    {
        var leaks = new List<string>();
        var files = Directory.EnumerateFiles(_f.Proxy.Directory, "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(files, f => f.StartsWith(_f.Proxy.DataDirectory, StringComparison.Ordinal));
        Assert.Contains(files, f => f.StartsWith(_f.Proxy.CaDirectory, StringComparison.Ordinal));
        foreach (var file in files)
        {
            byte[] bytes;
            try
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                bytes = copy.ToArray();
            }
            catch (FileNotFoundException)
            {
                continue; // e.g. a journal removed meanwhile
            }

            leaks.AddRange(SecretForms.FoundIn(Encoding.Latin1.GetString(bytes), _f.AllRealValues).Select(l => $"{file} {l}"));
        }

        return leaks;
    }

    private static async Task<T> PollAsync<T>(Func<Task<T?>> probe)
        where T : class
    {
        for (var i = 0; i < 200; i++)
        {
            if (await probe() is { } value)
            {
                return value;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("condition not reached in 20 s");
    }
}
